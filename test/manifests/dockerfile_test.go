package manifests

import (
	"bytes"
	"debug/elf"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// dockerfileSteps returns the instructions of the Dockerfile's first
// (builder) stage, continuation lines joined, comments dropped.
func dockerfileSteps(t *testing.T) [][2]string {
	t.Helper()
	text := strings.ReplaceAll(string(readFile(t, "Dockerfile")), "\\\n", " ")
	var steps [][2]string
	stages := 0
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr, args, _ := strings.Cut(line, " ")
		instr = strings.ToUpper(instr)
		if instr == "FROM" {
			if stages++; stages > 1 {
				break
			}
		}
		steps = append(steps, [2]string{instr, strings.TrimSpace(args)})
	}
	return steps
}

// dockerIgnored reports whether rel (slash-separated, relative to the build
// context) is left out of the context by patterns, for the subset of
// .dockerignore syntax this repository uses: plain globs, "!" exceptions,
// a trailing "/" and a leading "**/". A pattern that matches a directory
// matches everything under it; the last matching pattern wins.
func dockerIgnored(patterns []string, rel string) bool {
	parts := strings.Split(rel, "/")
	ignored := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimSuffix(strings.TrimPrefix(p, "!"), "/")
		for i := 1; i <= len(parts); i++ {
			var ok bool
			if base, anyDir := strings.CutPrefix(p, "**/"); anyDir {
				ok, _ = path.Match(base, parts[i-1])
			} else {
				ok, _ = path.Match(p, strings.Join(parts[:i], "/"))
			}
			if ok {
				ignored = !neg
				break
			}
		}
	}
	return ignored
}

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
		if got := dockerIgnored(patterns, rel); got != want {
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
	var ignore []string
	for _, l := range strings.Split(string(readFile(t, ".dockerignore")), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			ignore = append(ignore, l)
		}
	}
	work := t.TempDir()
	var build string
	for _, s := range dockerfileSteps(t) {
		switch instr, args := s[0], s[1]; instr {
		case "COPY":
			if strings.HasPrefix(args, "--") {
				t.Fatalf("the builder stage's COPY %s has flags this test does not know", args)
			}
			f := strings.Fields(args)
			srcs, dst := f[:len(f)-1], filepath.Join(work, f[len(f)-1])
			for _, src := range srcs {
				target := dst
				if len(srcs) > 1 || strings.HasSuffix(f[len(f)-1], "/") && !strings.HasSuffix(src, "/") {
					target = filepath.Join(dst, filepath.Base(src))
				}
				copyContext(t, root, strings.TrimSuffix(src, "/"), target, ignore)
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

// copyContext copies src (relative to the build context root) to dst,
// leaving out what .dockerignore leaves out of the context.
func copyContext(t *testing.T, root, src, dst string, ignore []string) {
	t.Helper()
	err := filepath.WalkDir(filepath.Join(root, src), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if dockerIgnored(ignore, filepath.ToSlash(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		inner, err := filepath.Rel(filepath.Join(root, src), p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, inner)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o600)
	})
	if err != nil {
		t.Fatalf("COPY %s: %v", src, err)
	}
}
