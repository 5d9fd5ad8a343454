package main

import (
	"strings"
	"testing"

	"github.com/scriptlock/customer-operator/internal/version"
)

// TestVersionPrintsTheStampedVersion: `kubectl scriptlock version` prints
// internal/version.Version, the variable the build stamps into both the
// plugin and the manager (test/manifests builds both and compares).
func TestVersionPrintsTheStampedVersion(t *testing.T) {
	old := version.Version
	t.Cleanup(func() { version.Version = old })
	version.Version = "v1.2.3-test"

	stdout, stderr, err := runCmd(t, testDeps(nil), "version")
	if err != nil || stdout != "v1.2.3-test\n" || stderr != "" {
		t.Errorf("version: stdout %q, stderr %q, err %v; want %q", stdout, stderr, err, "v1.2.3-test\n")
	}
	if _, _, err := runCmd(t, testDeps(nil), "version", "extra"); err == nil {
		t.Error("version with an argument should fail")
	}
	if stdout, _, _ := runCmd(t, testDeps(nil), "help"); !strings.Contains(stdout, "version") {
		t.Errorf("the usage does not list the version command:\n%s", stdout)
	}
}
