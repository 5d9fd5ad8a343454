package manifests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scriptlock/customer-operator/hack/localenv"
)

// TestBuildStampsOneVersionIntoBothBinaries builds the manager and the
// kubectl plugin with the very commands `make build VERSION=...` runs (read
// from `make -n`, with the output moved to a temporary directory), then
// checks that `manager --version` and `kubectl-scriptlock version` both
// print that version: one variable, internal/version.Version, is stamped
// into both (and is the User-Agent's version).
func TestBuildStampsOneVersionIntoBothBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two binaries")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	const version = "v9.9.9-version-test"
	root := repoRoot(t)
	// A make of our own, not a sub-make of `make test`.
	env := localenv.WithoutEnv(os.Environ(), "MAKEFLAGS", "MFLAGS", "MAKELEVEL")

	dry := exec.CommandContext(t.Context(), "make", "-s", "-n", "build", "VERSION="+version)
	dry.Dir, dry.Env = root, env
	out, err := dry.Output()
	if err != nil {
		t.Fatalf("make -n build: %v", err)
	}
	dir := t.TempDir()
	bins := map[string]string{"manager": "", "kubectl-scriptlock": ""}
	for _, line := range strings.Split(string(out), "\n") {
		for name := range bins {
			if !strings.Contains(line, "-o bin/"+name+" ") {
				continue
			}
			bins[name] = filepath.Join(dir, name)
			cmd := exec.CommandContext(t.Context(), "sh", "-c", strings.Replace(line, "-o bin/"+name+" ", "-o "+bins[name]+" ", 1))
			cmd.Dir, cmd.Env = root, env
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s\nfailed: %v\n%s", line, err, b)
			}
		}
	}
	for name, bin := range bins {
		if bin == "" {
			t.Fatalf("`make build` does not build bin/%s:\n%s", name, out)
		}
	}

	for _, args := range [][]string{{bins["manager"], "--version"}, {bins["kubectl-scriptlock"], "version", "--client"}} {
		got, err := exec.CommandContext(t.Context(), args[0], args[1:]...).Output()
		if err != nil {
			t.Errorf("%s %s: %v", filepath.Base(args[0]), args[1], err)
			continue
		}
		if string(got) != version+"\n" {
			t.Errorf("%s %s printed %q, want %q", filepath.Base(args[0]), args[1], got, version+"\n")
		}
	}
}
