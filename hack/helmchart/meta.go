package main

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strings"
	gotemplate "text/template"

	"sigs.k8s.io/yaml"
)

// skel holds the chart's files other than the objects' templates, at their
// paths in the chart: Chart.yaml, values.yaml, values.schema.json,
// README.md, .helmignore, templates/_helpers.tpl, templates/NOTES.txt and
// the `helm test` (templates/tests). Each is a text/template with [[ ]]
// delimiters (Helm's {{ }} pass through), filled in by chartMeta.
//
//go:embed all:skel
var skel embed.FS

// chartMeta returns the files of skel, filled in with the chart's versions
// and what config/default's Deployment says: the manager's image (its tag
// is appVersion's default), replicas, resources, pod selector and health
// port. README.md lists the values of the values.yaml written (readme.go).
func chartMeta(dep object, version, appVersion string) (map[string][]byte, error) {
	var manager map[string]any
	containers, _ := nested(dep, false, "spec", "template", "spec")["containers"].([]any)
	for _, c := range containers {
		if c, _ := c.(map[string]any); str(c, "name") == "manager" {
			manager = c
		}
	}
	if manager == nil {
		return nil, fmt.Errorf("%s: no container named manager", id(dep))
	}
	repo, tag, digest := splitImage(str(manager, "image"))
	if tag == "" {
		return nil, fmt.Errorf("config/manager should give the image a tag, it renders %q", str(manager, "image"))
	}
	if appVersion == "" {
		appVersion = tag
	}
	replicas := any(1)
	if r, ok := nested(dep, false, "spec")["replicas"]; ok {
		replicas = r
	}
	healthPort := 0
	ports, _ := manager["ports"].([]any)
	for _, p := range ports {
		if p, _ := p.(map[string]any); str(p, "name") == "health" {
			n, _ := p["containerPort"].(float64)
			healthPort = int(n)
		}
	}
	if healthPort == 0 {
		return nil, fmt.Errorf("%s: the manager has no port named health", id(dep))
	}
	resources, err := yaml.Marshal(map[string]any{"resources": manager["resources"]})
	if err != nil {
		return nil, err
	}
	podSelector, err := yaml.Marshal(nested(dep, false, "spec", "selector", "matchLabels"))
	if err != nil {
		return nil, err
	}
	data := map[string]any{
		"Version": version, "AppVersion": appVersion, "Repository": repo, "Digest": digest, "Replicas": replicas,
		"Resources": strings.TrimSuffix(string(resources), "\n"), "PodSelector": string(podSelector), "HealthPort": healthPort,
	}

	files := map[string][]byte{}
	err = fs.WalkDir(skel, "skel", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == "skel/README.md" {
			return err
		}
		files[strings.TrimPrefix(p, "skel/")], err = fill(p, data)
		return err
	})
	if err != nil {
		return nil, err
	}
	if data["Rows"], err = valueRows(files["values.yaml"]); err != nil {
		return nil, err
	}
	files["README.md"], err = fill("skel/README.md", data)
	return files, err
}

// fill executes the file of skel at name with data. Its function indent
// puts n spaces before every line of a text but the first (which goes where
// the call is).
func fill(name string, data map[string]any) ([]byte, error) {
	t, err := gotemplate.New(path.Base(name)).Delims("[[", "]]").Option("missingkey=error").Funcs(gotemplate.FuncMap{
		"indent": func(n int, text string) string {
			return strings.ReplaceAll(strings.TrimSuffix(text, "\n"), "\n", "\n"+strings.Repeat(" ", n))
		},
	}).ParseFS(skel, name)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	err = t.Execute(&b, data)
	return b.Bytes(), err
}

// splitImage splits "registry:5000/name:tag" or "name@sha256:..." into
// repository, tag and digest.
func splitImage(image string) (repo, tag, digest string) {
	if r, d, ok := strings.Cut(image, "@"); ok {
		image, digest = r, d
	}
	repo = image
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		repo, tag = image[:i], image[i+1:]
	}
	return repo, tag, digest
}
