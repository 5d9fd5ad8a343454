package manifests

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
func TestDockerfileBuildStepBuildsTheManager(t *testing.T) {
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
	// TARGETOS and TARGETARCH to the builder stage.
	const version = "v9.9.9-dockerfile-test"
	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
		cmd := exec.CommandContext(t.Context(), "sh", "-c", build)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "VERSION="+version, "TARGETOS=linux", "TARGETARCH="+arch)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("RUN %s (linux/%s)\nfailed: %v\n%s", build, arch, err, b)
		}
		binPath := filepath.Join(work, out[1])
		bin, err := os.ReadFile(binPath)
		if err != nil {
			t.Fatalf("the build step made no %s: %v", out[1], err)
		}
		if !bytes.Contains(bin, []byte(version)) {
			t.Errorf("linux/%s: the binary does not carry the version %q: -ldflags -X .../internal/version.Version is not applied", arch, version)
		}
		if bytes.Contains(bin, []byte(work)) {
			t.Errorf("linux/%s: the binary holds the build directory %s: -trimpath is missing", arch, work)
		}
		f, err := elf.Open(binPath)
		if err != nil {
			t.Fatalf("linux/%s: not an ELF binary: %v", arch, err)
		}
		if f.Machine != machine {
			t.Errorf("TARGETARCH=%s built a %s binary: GOARCH is not taken from TARGETARCH", arch, f.Machine)
		}
		_ = f.Close()
		if err := os.Remove(binPath); err != nil {
			t.Fatal(err)
		}
	}
}
