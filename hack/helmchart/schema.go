package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// crdSchemas returns a JSON schema for every version of every CRD in the
// YAML files of dir (config/crd/bases), by path
// "<group>/<kind>_<version>.json": the layout kubeconform's
// -schema-location templates ({{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}})
// and the yaml-language-server's `$schema` comments use. As kubeconform's
// openapi2jsonschema does, every object with properties refuses others
// (what the API server prunes, a GitOps check should report), and
// x-kubernetes-int-or-string becomes "integer or string". CEL rules
// (x-kubernetes-validations) have no JSON schema form: the API server
// still checks them.
func crdSchemas(dir string) (map[string][]byte, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var crd struct {
			Kind string `json:"kind"`
			Spec struct {
				Group string `json:"group"`
				Names struct {
					Kind string `json:"kind"`
				} `json:"names"`
				Versions []struct {
					Name   string `json:"name"`
					Schema struct {
						OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
					} `json:"schema"`
				} `json:"versions"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(b, &crd); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if crd.Kind != "CustomResourceDefinition" {
			continue
		}
		for _, v := range crd.Spec.Versions {
			s := v.Schema.OpenAPIV3Schema
			if s == nil {
				return nil, fmt.Errorf("%s: version %s has no schema", f, v.Name)
			}
			strict(s)
			s["$schema"] = "http://json-schema.org/draft-07/schema#"
			s["title"] = crd.Spec.Names.Kind + " (" + crd.Spec.Group + "/" + v.Name + ")"
			j, err := json.MarshalIndent(s, "", "  ")
			if err != nil {
				return nil, err
			}
			path := crd.Spec.Group + "/" + strings.ToLower(crd.Spec.Names.Kind) + "_" + v.Name + ".json"
			out[path] = append(j, '\n')
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no CustomResourceDefinition in %s", dir)
	}
	return out, nil
}

// strict makes s, and every schema in it, refuse properties it does not
// name, and spells int-or-string in JSON schema.
func strict(s map[string]any) {
	if s["x-kubernetes-int-or-string"] == true {
		delete(s, "type")
		s["oneOf"] = []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}
	}
	if props, ok := s["properties"].(map[string]any); ok {
		if _, set := s["additionalProperties"]; !set && s["x-kubernetes-preserve-unknown-fields"] != true {
			s["additionalProperties"] = false
		}
		for _, p := range props {
			if p, ok := p.(map[string]any); ok {
				strict(p)
			}
		}
	}
	for _, key := range []string{"items", "additionalProperties"} {
		if sub, ok := s[key].(map[string]any); ok {
			strict(sub)
		}
	}
}
