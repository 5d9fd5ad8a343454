package crdcheck

import (
	"fmt"
	"slices"
	"strings"
)

// node is the part of an OpenAPI v3 schema that decides whether the API
// server keeps a field: its properties, the schema of its items, its type,
// and whether unknown fields are kept. A CRD's openAPIV3Schema and the
// schema the API server publishes for it both decode into it from JSON.
// (The Customer has no map fields; a map's value schema would need
// additionalProperties here.)
type node struct {
	Type                 string           `json:"type,omitempty"`
	Properties           map[string]*node `json:"properties,omitempty"`
	Items                *node            `json:"items,omitempty"`
	IntOrString          bool             `json:"x-kubernetes-int-or-string,omitempty"`
	PreserveUnknownField bool             `json:"x-kubernetes-preserve-unknown-fields,omitempty"`
}

// version is what the API server serves of the Customer kind at one
// version; nil when that version is not served.
type version struct {
	schema *node
	// status is whether the status subresource is on: without it the
	// manager's status writes are refused and spec writes drop the status.
	status bool
}

// problem is one thing the installed API lacks.
type problem struct {
	kind problemKind
	// field is the path the manager relies on ("status.pendingCreate",
	// "status.conditions[].reason"), for missing and wrongType.
	field string
	// have and want are the installed and the needed type, for wrongType.
	have, want string
}

type problemKind int

const (
	notServed problemKind = iota
	noStatusSubresource
	missing
	wrongType
)

// compare returns what have lacks of want, the version the manager was
// built with: the version is not served, the status subresource is off, a
// field is missing (the API server prunes it: what the manager writes there
// is silently lost, and what a user writes there never reaches it) or has
// another type (the API server refuses the object). A missing object is
// reported once, not field by field. Validation (enums, lengths, CEL) is
// not compared: an older CRD that admits more than this one does not lose
// what the manager relies on.
func compare(want, have *version) []problem {
	if have == nil {
		return []problem{{kind: notServed}}
	}
	var out []problem
	if want.status && !have.status {
		out = append(out, problem{kind: noStatusSubresource})
	}
	return append(out, compareNode("", want.schema, have.schema)...)
}

func compareNode(path string, want, have *node) []problem {
	if want == nil {
		return nil
	}
	if have == nil {
		return []problem{{kind: missing, field: path}}
	}
	if w, h := typeOf(want), typeOf(have); w != "" && h != "" && w != h {
		return []problem{{kind: wrongType, field: path, have: h, want: w}}
	}
	var out []problem
	names := make([]string, 0, len(want.Properties))
	for name := range want.Properties {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		h := have.Properties[name]
		if h == nil && have.PreserveUnknownField {
			continue // kept as written, whatever it holds
		}
		out = append(out, compareNode(join(path, name), want.Properties[name], h)...)
	}
	if want.Items != nil && have.Items != nil {
		out = append(out, compareNode(path+"[]", want.Items, have.Items)...)
	}
	return out
}

// typeOf is the node's JSON type; "" when any type is kept.
func typeOf(n *node) string {
	if n.IntOrString {
		return "int-or-string"
	}
	return n.Type
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// describe says what ps are in one line, for a person who did not write
// the manager: the missing fields together, then each of the rest.
func describe(v string, ps []problem) string {
	var out, fields []string
	for _, p := range ps {
		switch p.kind {
		case notServed:
			out = append(out, v+" is not served")
		case noStatusSubresource:
			out = append(out, v+" has no status subresource (the manager's status writes are refused)")
		case missing:
			fields = append(fields, p.field)
		case wrongType:
			out = append(out, fmt.Sprintf("%s is %s, not %s (the API server refuses what the manager writes)", p.field, p.have, p.want))
		}
	}
	if len(fields) > 0 {
		out = append([]string{fmt.Sprintf("%s has no field %s (the API server silently drops what the manager writes or reads there)", v, strings.Join(fields, ", "))}, out...)
	}
	return strings.Join(out, "; ")
}
