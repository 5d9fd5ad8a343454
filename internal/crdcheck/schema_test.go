package crdcheck

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestEmbeddedCRDIsCurrent fails when customer_crd.yaml is not the CRD
// make manifests generates: run `go generate ./internal/crdcheck`.
func TestEmbeddedCRDIsCurrent(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("..", "..", crdFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(customerCRD, want) {
		t.Fatal("internal/crdcheck/customer_crd.yaml is stale: run `make manifests` (go generate ./internal/crdcheck)")
	}
	b, err := builtWith()
	if err != nil {
		t.Fatal(err)
	}
	if !b.version.status || b.version.schema.Properties["status"].Properties["pendingCreate"] == nil {
		t.Fatal("the built-in schema lost the status subresource or status.pendingCreate: the check would not guard them")
	}
}

// schema decodes a JSON schema for the table below.
func schema(t *testing.T, s string) *node {
	t.Helper()
	n := &node{}
	if err := json.Unmarshal([]byte(s), n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCompare(t *testing.T) {
	const built = `{"type":"object","properties":{
		"spec":{"type":"object","properties":{"email":{"type":"string"},"managementPolicy":{"type":"string"}}},
		"status":{"type":"object","properties":{
			"url":{"type":"string"},
			"observedGeneration":{"type":"integer"},
			"pendingCreate":{"type":"object","properties":{"uid":{"type":"string"},"digests":{"type":"array","items":{"type":"string"}}}},
			"conditions":{"type":"array","items":{"type":"object","properties":{"reason":{"type":"string"}}}},
			"port":{"x-kubernetes-int-or-string":true}}}}}`
	cases := []struct {
		name      string
		installed string // "" : the version is not served
		noStatus  bool
		want      []problem
	}{
		{"every field present", built, false, nil},
		{"fields missing: an object once, not field by field", `{"type":"object","properties":{
			"spec":{"type":"object","properties":{"email":{"type":"string"}}},
			"status":{"type":"object","properties":{"observedGeneration":{"type":"integer"},
				"conditions":{"type":"array","items":{"type":"object","properties":{}}},"port":{"x-kubernetes-int-or-string":true}}}}}`, false,
			[]problem{{kind: missing, field: "spec.managementPolicy"}, {kind: missing, field: "status.conditions[].reason"},
				{kind: missing, field: "status.pendingCreate"}, {kind: missing, field: "status.url"}}},
		{"a field of another type", strings.Replace(built, `"url":{"type":"string"}`, `"url":{"type":"integer"}`, 1), false,
			[]problem{{kind: wrongType, field: "status.url", have: "integer", want: "string"}}},
		{"the items of a list of another type", strings.Replace(built, `"items":{"type":"string"}`, `"items":{"type":"integer"}`, 1), false,
			[]problem{{kind: wrongType, field: "status.pendingCreate.digests[]", have: "integer", want: "string"}}},
		{"int-or-string is not a string", strings.Replace(built, `"port":{"x-kubernetes-int-or-string":true}`, `"port":{"type":"string"}`, 1), false,
			[]problem{{kind: wrongType, field: "status.port", have: "string", want: "int-or-string"}}},
		{"a status that keeps unknown fields keeps them all", `{"type":"object","properties":{
			"spec":{"type":"object","properties":{"email":{"type":"string"},"managementPolicy":{"type":"string"}}},
			"status":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}`, false, nil},
		{"the version not served", "", false, []problem{{kind: notServed}}},
		{"the status subresource off", built, true, []problem{{kind: noStatusSubresource}}},
	}
	want := &version{schema: schema(t, built), status: true}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var have *version
			if tc.installed != "" {
				have = &version{schema: schema(t, tc.installed), status: !tc.noStatus}
			}
			if got := compare(want, have); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("compare:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestDescribeNamesTheMissingFieldsTogether(t *testing.T) {
	got := describe("v1alpha1", []problem{
		{kind: missing, field: "status.account"}, {kind: noStatusSubresource},
		{kind: wrongType, field: "status.url", have: "integer", want: "string"}, {kind: missing, field: "status.pendingCreate"},
	})
	want := "v1alpha1 has no field status.account, status.pendingCreate (the API server silently drops what the manager writes or reads there); " +
		"v1alpha1 has no status subresource (the manager's status writes are refused); " +
		"status.url is integer, not string (the API server refuses what the manager writes)"
	if got != want {
		t.Errorf("describe:\n got %s\nwant %s", got, want)
	}
}

func TestUpdateCommandNamesTheReleasesCRD(t *testing.T) {
	for v, want := range map[string]string{
		"v0.2.0":                 "kubectl apply --server-side -f https://raw.githubusercontent.com/scriptlock/customer-operator/v0.2.0/" + crdFile,
		"dev":                    "kubectl apply --server-side -f " + crdFile + " in the checkout",
		"v0.2.0-3-gabcdef-dirty": "(make install)",
	} {
		if got := updateCommand(v); !strings.Contains(got, want) {
			t.Errorf("%s: %q, want %q in it", v, got, want)
		}
	}
}
