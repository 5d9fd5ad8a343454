// Command helmchart writes the operator's Helm chart (dist/chart) from the
// kustomize sources in config/, so that the chart is never a second,
// hand-kept copy of them: `make helm-chart` runs it, `make verify-chart`
// fails when the checked-in chart is not what it writes.
//
//	go run . -config ../../config -out ../../dist/chart -version 0.1.0
//
// What it does, in order: kustomize builds config/default and
// config/namespaced (with config/prometheus added, render.go); every object
// becomes one template, switched on or off by the values, with the names
// following the release and every namespaced object in the release's
// namespace; the Deployment takes image, resources, replicas and arguments
// from the values; namespaced mode is what config/namespaced changes
// (chart.go). The chart's other files (Chart.yaml, values.yaml and its
// schema, README.md, the helpers, NOTES.txt, the `helm test`) are the
// checked-in files of skel/, with the image, versions, resources and
// ports filled in (meta.go) and the table of values added to README.md
// (readme.go). With -schemas it also writes the JSON schemas of the CRDs
// (schema.go), the other artifact users validate against.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"sigs.k8s.io/yaml"
)

func main() {
	configDir := flag.String("config", "../../config", "the repository's config/ directory")
	out := flag.String("out", "../../dist/chart", "the chart directory to (re)write")
	version := flag.String("version", "0.1.0", "the chart's version (Chart.yaml)")
	appVersion := flag.String("app-version", "", "the chart's appVersion (Chart.yaml), the default tag of the image; empty: config/manager's tag")
	schemas := flag.String("schemas", "", "if set, also (re)write there the CRDs' JSON schemas for kubeconform and yaml-language-server")
	pkg := flag.String("package", "", "if set, also package the chart into this folder (<name>-<version>.tgz), as `helm package` does")
	flag.Parse()
	err := run(*configDir, *out, *version, *appVersion)
	if err == nil && *pkg != "" {
		err = packageChart(*out, *pkg)
	}
	if err == nil && *schemas != "" {
		var s map[string][]byte
		if s, err = crdSchemas(filepath.Join(*configDir, "crd", "bases")); err == nil {
			err = writeFiles(*schemas, s)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helmchart:", err)
		os.Exit(1)
	}
}

// packageChart writes the chart in dir to a .tgz in dest, with Helm's
// library, as `helm package` does.
func packageChart(dir, dest string) error {
	ch, err := loader.Load(dir)
	if err != nil {
		return err
	}
	if err := ch.Validate(); err != nil {
		return err
	}
	path, err := chartutil.Save(ch, dest)
	if err == nil {
		fmt.Println("wrote", path)
	}
	return err
}

func run(configDir, out, version, appVersion string) error {
	r, err := renderConfig(configDir)
	if err != nil {
		return err
	}
	files, err := generate(r, version, appVersion)
	if err != nil {
		return err
	}
	return writeChart(out, files)
}

// writeChart replaces the chart in dir with files, so that the template of
// an object that left config/ goes too. It refuses to clear a directory
// that holds anything but this chart.
func writeChart(dir string, files map[string][]byte) error {
	if b, err := os.ReadFile(filepath.Join(dir, "Chart.yaml")); err == nil {
		var c struct{ Name string }
		if err := yaml.Unmarshal(b, &c); err != nil || c.Name != chartName {
			return fmt.Errorf("%s holds a chart other than %s: not overwriting it", dir, chartName)
		}
	} else if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s exists and is not the %s chart: not overwriting it", dir, chartName)
	}
	return writeFiles(dir, files)
}

// writeFiles replaces dir with files, by slash-separated path.
func writeFiles(dir string, files map[string][]byte) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	for name, b := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil { //nolint:gosec // published files, readable by all
			return err
		}
		if err := os.WriteFile(path, b, 0o644); err != nil { //nolint:gosec // published files, readable by all
			return err
		}
	}
	return nil
}
