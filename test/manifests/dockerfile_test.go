package manifests

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/scriptlock/customer-operator/hack/dockerfile"
)

// TestDockerIgnoreMatcher checks hack/dockerfile's reading of
// .dockerignore, which the build below and the e2e image use.
func TestDockerIgnoreMatcher(t *testing.T) {
	patterns := []string{"*", "!main.go", "!internal/", "**/*_test.go", "**/testdata/"}
	for rel, want := range map[string]bool{
		"main.go":                             false,
		"internal/scriptlock/client.go":       false,
		"internal/scriptlock/client_test.go":  true,
		"internal/scriptlock/testdata/fuzz/x": true,
		"bin/k8s/kube-apiserver":              true,
		"README.md":                           true,
	} {
		if got := dockerfile.Ignored(patterns, rel); got != want {
			t.Errorf("%s: ignored=%v, want %v", rel, got, want)
		}
	}
}

// TestDockerfileBuildStepBuildsTheManager runs the builder stage of the
// Dockerfile without Docker: every COPY of the build context (filtered by
// .dockerignore) into a fresh directory, then the exact `go build` RUN
// line, read from the Dockerfile rather than repeated here. It fails when
// the image would not build: a package the COPY lines miss, a broken
// command line, a version that is not stamped.
func TestDockerfileBuildStepBuildsTheManager(t *testing.T) { //nolint:gocyclo // reads the Dockerfile step by step, then checks the build per platform; splitting it would only pass the state around
	if testing.Short() {
		t.Skip("builds the manager from scratch")
	}
	root := repoRoot(t)
	ignore, err := dockerfile.Ignore(root)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	var build string
	for _, s := range dockerfile.Stages(string(readFile(t, "Dockerfile")))[0] {
		switch instr, args := s.Cmd, s.Args; instr {
		case "COPY":
			if err := dockerfile.Copy(root, ignore, args, work); err != nil {
				t.Fatalf("the builder stage's %v", err)
			}
		case "RUN":
			if strings.Contains(args, "go build") {
				if build != "" {
					t.Fatal("the Dockerfile has more than one `go build` step")
				}
				build = args
			}
		}
	}
	if build == "" {
		t.Fatal("no `go build` RUN step in the Dockerfile's builder stage")
	}
	out := regexp.MustCompile(`-o\s+(\S+)`).FindStringSubmatch(build)
	if out == nil {
		t.Fatalf("the build step names no output (-o): %s", build)
	}

	// Each platform of `make docker-buildx` (PLATFORMS), as buildx passes
	// TARGETOS and TARGETARCH to the builder stage. The line runs under a
	// `go` that records its environment and arguments: for the build
	// machine's own architecture it then runs the real go (the image's
	// build works and stamps the version); for the other it stops there,
	// since what the platform changes is only GOOS and GOARCH (compiling
	// every dependency a second time, for arm64, proves nothing more about
	// this Dockerfile and was most of this package's time).
	realGo, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	const version = "v9.9.9-dockerfile-test"
	seen := map[string]string{}
	for _, arch := range []string{"amd64", "arm64"} {
		shim := t.TempDir()
		log := filepath.Join(shim, "log")
		script := "#!/bin/sh\nprintf '%s %s %s|%s' \"$CGO_ENABLED\" \"$GOOS\" \"$GOARCH\" \"$*\" > " + log + "\n"
		if arch == runtime.GOARCH {
			script += "exec " + realGo + " \"$@\"\n"
		}
		if err := os.WriteFile(filepath.Join(shim, "go"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(t.Context(), "sh", "-c", build)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "PATH="+shim+string(os.PathListSeparator)+os.Getenv("PATH"),
			"VERSION="+version, "TARGETOS=linux", "TARGETARCH="+arch)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("RUN %s (linux/%s)\nfailed: %v\n%s", build, arch, err, b)
		}
		rec, err := os.ReadFile(log)
		if err != nil {
			t.Fatalf("linux/%s: the build step never ran go: %v", arch, err)
		}
		env, args, _ := strings.Cut(string(rec), "|")
		if want := "0 linux " + arch; env != want {
			t.Errorf("linux/%s: go ran with CGO_ENABLED GOOS GOARCH = %q, want %q", arch, env, want)
		}
		seen[arch] = args
	}
	if seen["amd64"] != seen["arm64"] {
		t.Errorf("the build's arguments depend on the platform:\n amd64: %s\n arm64: %s", seen["amd64"], seen["arm64"])
	}
	if !strings.Contains(seen["amd64"], version) {
		t.Errorf("the build does not pass the version %q: %s", version, seen["amd64"])
	}

	binPath := filepath.Join(work, out[1])
	bin, err := os.ReadFile(binPath)
	if err != nil {
		t.Fatalf("the build step made no %s: %v", out[1], err)
	}
	if !bytes.Contains(bin, []byte(version)) {
		t.Errorf("the binary does not carry the version %q: -ldflags -X is not applied", version)
	}
	if bytes.Contains(bin, []byte(work)) {
		t.Errorf("the binary holds the build directory %s: -trimpath is missing", work)
	}
	f, err := elf.Open(binPath)
	if err != nil {
		t.Fatalf("not an ELF binary: %v", err)
	}
	defer func() { _ = f.Close() }()
	if want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[runtime.GOARCH]; f.Machine != want {
		t.Errorf("TARGETARCH=%s built a %s binary: GOARCH is not taken from TARGETARCH", runtime.GOARCH, f.Machine)
	}
}
