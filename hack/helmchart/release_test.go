package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
)

// TestReleasedChartRendersWithEveryValue: the chart `make release-dry-run`
// packages (RELEASE_DIR, skipped without it) has the release as appVersion
// and version, runs the release's image by default, and renders with
// every value set, in each mode.
func TestReleasedChartRendersWithEveryValue(t *testing.T) {
	dir, version := os.Getenv("RELEASE_DIR"), os.Getenv("RELEASE_VERSION")
	if dir == "" || version == "" {
		t.Skip("RELEASE_DIR and RELEASE_VERSION are unset: `make release-dry-run` packages the chart and runs this")
	}
	tgz := filepath.Join(dir, chartName+"-"+strings.TrimPrefix(version, "v")+".tgz")
	ch, err := loader.Load(tgz)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Metadata.AppVersion != version || ch.Metadata.Version != strings.TrimPrefix(version, "v") {
		t.Errorf("%s: appVersion %q, version %q; want %s", filepath.Base(tgz), ch.Metadata.AppVersion, ch.Metadata.Version, version)
	}
	// helmTemplate loads a directory or an archive alike.
	if c := deployment(t, helmTemplate(t, tgz, release, operatorNamespace, nil)).Spec.Template.Spec.Containers[0]; !strings.HasSuffix(c.Image, ":"+version) {
		t.Errorf("the packaged chart runs %s by default, want the release's tag %s", c.Image, version)
	}
	every := platformValues + `
image: {repository: registry.example.com/scriptlock/customer-operator, tag: v9.9.9, pullPolicy: Always}
replicas: 2
resources: {limits: {memory: 1Gi}}
extraArgs: ["--resync-period=5m"]
namePrefix: team-
leaderElection: {id: my-lease}
`
	for _, mode := range []string{"", "namespaced: {enabled: true, clusterParts: true}", "sharding: {selector: shard=a}\ncrd: {install: false}\ndeletionProtection: {enabled: false}"} {
		objs := helmTemplate(t, tgz, release, operatorNamespace, values(every+mode))
		if len(objs) < 10 {
			t.Errorf("values %q: %d objects", mode, len(objs))
		}
		if len(helmTests(t, tgz, release, operatorNamespace, values(every+mode))) != 3 {
			t.Errorf("values %q: the helm test objects are missing", mode)
		}
	}
}
