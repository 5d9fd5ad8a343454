package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// object is one rendered Kubernetes object, as JSON decodes it.
type object = map[string]any

// renders is what the chart is generated from: kustomize's output for
// config/default and for config/namespaced, both with config/prometheus
// added to config/default the way its comment says to ("uncomment
// `- ../prometheus`"), so that the ServiceMonitor and the PrometheusRule
// get the very names, namespace and labels of the rest.
type renders struct {
	Default    []object
	Namespaced []object
	// Cluster is config/cluster: the cluster-scoped objects that every
	// namespace-scoped install shares.
	Cluster []object
	// Grafana is config/grafana: the dashboard's ConfigMap.
	Grafana []object
	// NamePrefix is config/default's namePrefix ("scriptlock-").
	NamePrefix string
}

// renderConfig builds the kustomizations of configDir (the repository's
// config/) with the kustomize library, as `kustomize build` does, on a
// temporary copy in which config/default also lists ../prometheus. The
// checkout is never changed.
func renderConfig(configDir string) (*renders, error) {
	tmp, err := os.MkdirTemp("", "helmchart-config-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	dst := filepath.Join(tmp, "config")
	if err := os.CopyFS(dst, os.DirFS(configDir)); err != nil {
		return nil, err
	}

	kfile := filepath.Join(dst, "default", "kustomization.yaml")
	b, err := os.ReadFile(kfile)
	if err != nil {
		return nil, err
	}
	var k types.Kustomization
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(configDir, "default", "kustomization.yaml"), err)
	}
	if !slices.Contains(k.Resources, "../prometheus") {
		k.Resources = append(k.Resources, "../prometheus")
	}
	if b, err = yaml.Marshal(&k); err != nil {
		return nil, err
	}
	if err := os.WriteFile(kfile, b, 0o600); err != nil {
		return nil, err
	}

	r := &renders{NamePrefix: k.NamePrefix}
	for _, b := range []struct {
		dir  string
		objs *[]object
	}{{"default", &r.Default}, {"namespaced", &r.Namespaced}, {"cluster", &r.Cluster}, {"grafana", &r.Grafana}} {
		if *b.objs, err = build(filepath.Join(dst, b.dir)); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// build is `kustomize build dir`, in process.
func build(dir string) ([]object, error) {
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", filepath.Base(dir), err)
	}
	var objs []object
	for _, res := range resMap.Resources() {
		b, err := res.MarshalJSON()
		if err != nil {
			return nil, err
		}
		var o object
		if err := json.Unmarshal(b, &o); err != nil {
			return nil, err
		}
		objs = append(objs, o)
	}
	return objs, nil
}
