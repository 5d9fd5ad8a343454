package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
)

// valueRows returns the rows of the chart README's table of values from
// values.yaml, its comments included, as helm-docs does: one row per value
// with its type, default and the comment above it (a value without a
// comment shares the one above its group). A map whose keys have comments
// of their own is listed key by key; any other map or list is one value.
func valueRows(values []byte) (string, error) {
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(values, &doc); err != nil {
		return "", err
	}
	if doc.Kind != yamlv3.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yamlv3.MappingNode {
		return "", fmt.Errorf("values.yaml is not a map")
	}
	var b bytes.Buffer
	err := rows(&b, doc.Content[0], "")
	return b.String(), err
}

func rows(b *bytes.Buffer, m *yamlv3.Node, prefix string) error {
	last := ""
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		desc := comment(k.HeadComment)
		if v.Kind == yamlv3.MappingNode && commented(v) {
			last = ""
			if err := rows(b, v, prefix+k.Value+"."); err != nil {
				return err
			}
			continue
		}
		if desc == "" {
			desc = last
		}
		last = desc
		var def any
		if err := v.Decode(&def); err != nil {
			return err
		}
		j, err := json.Marshal(def)
		if err != nil {
			return err
		}
		fmt.Fprintf(b, "| `%s` | %s | `%s` | %s |\n", prefix+k.Value, typeOf(v), j, strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;").Replace(desc))
	}
	return nil
}

// commented says whether a key of the map m, or of a map in it, has a
// comment of its own.
func commented(m *yamlv3.Node) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].HeadComment != "" || m.Content[i+1].Kind == yamlv3.MappingNode && commented(m.Content[i+1]) {
			return true
		}
	}
	return false
}

// comment joins the lines of a YAML comment into one, without the #s.
func comment(c string) string {
	var words []string
	for _, l := range strings.Split(c, "\n") {
		words = append(words, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "#")))
	}
	return strings.TrimSpace(strings.Join(words, " "))
}

func typeOf(v *yamlv3.Node) string {
	switch v.Kind {
	case yamlv3.MappingNode:
		return "object"
	case yamlv3.SequenceNode:
		return "list"
	}
	switch v.Tag {
	case "!!bool":
		return "bool"
	case "!!int":
		return "int"
	case "!!float":
		return "float"
	}
	return "string"
}
