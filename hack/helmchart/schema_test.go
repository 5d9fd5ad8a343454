package main

// The Customer's JSON schema as kubeconform uses it (the same JSON schema
// library, github.com/santhosh-tekuri/jsonschema): every Customer the
// repository ships passes, what the API server would refuse or prune is
// reported.

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"
)

func customerSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	schemas, err := crdSchemas(filepath.Join(repoRoot(t), "config", "crd", "bases"))
	if err != nil {
		t.Fatal(err)
	}
	const path = "licensing.scriptlock.com/customer_v1alpha1.json"
	b, ok := schemas[path]
	if !ok {
		t.Fatalf("no %s among %d schemas", path, len(schemas))
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(path, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func instance(t *testing.T, yamlText string) any {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(yamlText))
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestShippedCustomersPassTheJSONSchema: the sample Customer and every
// Customer of the health checks' fixtures (with their status) validate.
func TestShippedCustomersPassTheJSONSchema(t *testing.T) {
	s := customerSchema(t)
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "test", "health", "testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(repoRoot(t), "config", "samples", "licensing_v1alpha1_customer.yaml"))
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(b), "\n---\n") {
			if !strings.Contains(doc, "kind: Customer") {
				continue
			}
			n++
			if err := s.Validate(instance(t, doc)); err != nil {
				t.Errorf("%s: %v", filepath.Base(f), err)
			}
		}
	}
	if n < 10 {
		t.Fatalf("only %d Customers found to validate", n)
	}
}

// TestTheJSONSchemaRefusesWhatTheAPIServerWould: unknown fields (which the
// API server would prune or refuse), missing required fields, values
// outside an enum, wrong types and over-long strings.
func TestTheJSONSchemaRefusesWhatTheAPIServerWould(t *testing.T) {
	s := customerSchema(t)
	const head = "apiVersion: licensing.scriptlock.com/v1alpha1\nkind: Customer\nmetadata: {name: x}\n"
	if err := s.Validate(instance(t, head+"spec: {firstName: A, lastName: B, email: a@example.com}")); err != nil {
		t.Fatalf("a minimal Customer is refused: %v", err)
	}
	for name, spec := range map[string]string{
		"an unknown field":             "spec: {firstName: A, lastName: B, email: a@example.com, emial: b@example.com}",
		"no email":                     "spec: {firstName: A, lastName: B}",
		"an unknown deletionPolicy":    "spec: {firstName: A, lastName: B, email: a@example.com, deletionPolicy: Remove}",
		"a number for a string":        "spec: {firstName: 1, lastName: B, email: a@example.com}",
		"a first name over 255 chars":  "spec: {firstName: " + strings.Repeat("a", 256) + ", lastName: B, email: a@example.com}",
		"an unknown field at the root": "spec: {firstName: A, lastName: B, email: a@example.com}\nspecs: {}",
		"an unknown credentials field": "spec: {firstName: A, lastName: B, email: a@example.com, credentialsSecretRef: {name: s, namespace: other}}",
	} {
		if err := s.Validate(instance(t, head+spec)); err == nil {
			t.Errorf("%s is accepted", name)
		}
	}
}
