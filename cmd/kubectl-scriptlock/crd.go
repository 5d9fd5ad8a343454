package main

import (
	"context"
	_ "embed"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	apiextensions "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
)

// customerCRD is a copy of the generated CRD (make manifests), so that
// import checks what it writes against the schema and the CEL rules the
// API server enforces, not a hand copy of them. TestEmbeddedCRDIsCurrent
// fails when the copy is stale; `go generate ./cmd/kubectl-scriptlock`
// (run by make build) refreshes it.
//
//go:generate cp ../../config/crd/bases/licensing.scriptlock.com_customers.yaml customer_crd.yaml
//go:embed customer_crd.yaml
var customerCRD []byte

// crdValidator validates Customers as the API server does on create:
// defaults, then the OpenAPI v3 schema, then the x-kubernetes-validations.
type crdValidator struct {
	structural *structuralschema.Structural
	schema     apiservervalidation.SchemaValidator
	cel        *cel.Validator
}

var loadValidator = sync.OnceValues(func() (*crdValidator, error) { return newCRDValidator(customerCRD) })

func newCRDValidator(crdYAML []byte) (*crdValidator, error) {
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(crdYAML, &crd); err != nil {
		return nil, fmt.Errorf("decoding the embedded Customer CRD: %w", err)
	}
	i := slices.IndexFunc(crd.Spec.Versions, func(v apiextensionsv1.CustomResourceDefinitionVersion) bool {
		return v.Name == v1alpha1.GroupVersion.Version
	})
	if i < 0 || crd.Spec.Versions[i].Schema == nil {
		return nil, fmt.Errorf("the embedded Customer CRD has no schema for %s", v1alpha1.GroupVersion.Version)
	}
	var in apiextensions.CustomResourceValidation
	if err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(crd.Spec.Versions[i].Schema, &in, nil); err != nil {
		return nil, fmt.Errorf("converting the Customer CRD schema: %w", err)
	}
	st, err := structuralschema.NewStructural(in.OpenAPIV3Schema)
	if err != nil {
		return nil, fmt.Errorf("the Customer CRD schema is not structural: %w", err)
	}
	sv, _, err := apiservervalidation.NewSchemaValidator(in.OpenAPIV3Schema)
	if err != nil {
		return nil, fmt.Errorf("building the Customer CRD schema validator: %w", err)
	}
	return &crdValidator{structural: st, schema: sv, cel: cel.NewValidator(st, true, celconfig.PerCallLimit)}, nil
}

// validate returns what the API server would refuse in c.
func (v *crdValidator) validate(c *v1alpha1.Customer) (field.ErrorList, error) {
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(c)
	if err != nil {
		return nil, err
	}
	delete(obj, "status")
	structuraldefaulting.Default(obj, v.structural)
	errs := apiservervalidation.ValidateCustomResource(nil, obj, v.schema)
	celErrs, _ := v.cel.Validate(context.Background(), nil, v.structural, obj, nil, celconfig.RuntimeCELCostBudget)
	return append(errs, celErrs...), nil
}

// admit returns c as the API server would store it when c is applied over
// old (nil for a create): with the CRD's defaults, and the messages of
// what the schema and the CEL rules (transition rules too: old is
// oldSelf) would refuse. c's status is left out, as the API server leaves
// it out of a write to the object.
func (v *crdValidator) admit(c, old *v1alpha1.Customer) (*v1alpha1.Customer, []string, error) {
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(c)
	if err != nil {
		return nil, nil, err
	}
	delete(obj, "status")
	structuraldefaulting.Default(obj, v.structural)
	var oldObj any
	if old != nil {
		o, err := runtime.DefaultUnstructuredConverter.ToUnstructured(old)
		if err != nil {
			return nil, nil, err
		}
		delete(o, "status")
		oldObj = o
	}
	errs := apiservervalidation.ValidateCustomResource(nil, obj, v.schema)
	celErrs, _ := v.cel.Validate(context.Background(), nil, v.structural, obj, oldObj, celconfig.RuntimeCELCostBudget)
	var problems []string
	for _, e := range append(errs, celErrs...) {
		problems = append(problems, e.Error())
	}
	out := &v1alpha1.Customer{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, out); err != nil {
		return nil, nil, err
	}
	out.Status = *c.Status.DeepCopy()
	return out, problems, nil
}

// recordFields names the spec fields a record fills, in the order problems
// are reported, by the record's own field names.
var recordFields = []struct{ path, name string }{
	{"spec.firstName", "firstname"},
	{"spec.lastName", "lastname"},
	{"spec.company", "company"},
	{"spec.email", "email"},
	{"spec.customerID", "id"},
}

// describeErrors turns the CRD's field errors about a Customer built from
// a record into messages in the record's terms. Values are quoted short,
// so a hostile record cannot flood the terminal.
func describeErrors(errs field.ErrorList, value func(path string) string) []string {
	order := func(e *field.Error) int {
		return slices.IndexFunc(recordFields, func(f struct{ path, name string }) bool { return f.path == e.Field })
	}
	slices.SortStableFunc(errs, func(a, b *field.Error) int { return order(a) - order(b) })
	var p []string
	for _, e := range errs {
		name, v := e.Field, ""
		if i := order(e); i >= 0 {
			name, v = recordFields[i].name, value(e.Field)
		}
		n := utf8.RuneCountInString(v)
		switch {
		case e.Field == "spec.customerID":
			p = append(p, fmt.Sprintf("id %s cannot be a spec.customerID (%s)", quoteShort(v), strings.TrimPrefix(e.ErrorBody(), "Invalid value: ")))
		case e.Type == field.ErrorTypeRequired || (e.Type == field.ErrorTypeInvalid && v == "" && strings.Contains(e.Detail, "at least")):
			p = append(p, name+" is empty")
		case e.Type == field.ErrorTypeTooLong:
			p = append(p, fmt.Sprintf("%s has %d characters (at most %s)", name, n, firstNumber(e.Detail)))
		case strings.Contains(e.Detail, "should be at least"):
			p = append(p, fmt.Sprintf("%s %s has %d characters (at least %s)", name, quoteShort(v), n, firstNumber(e.Detail)))
		default:
			p = append(p, fmt.Sprintf("%s %s %s", name, quoteShort(v), cutDetail(strings.TrimPrefix(e.Detail, name+" "))))
		}
	}
	return slices.Compact(p)
}

// firstNumber is the first run of digits in s (the limit in a schema
// message), or "?".
func firstNumber(s string) string {
	if m := digits.FindString(s); m != "" {
		return m
	}
	return "?"
}

var digits = regexp.MustCompile(`[0-9]+`)

// cutDetail keeps a CRD message short and on one line.
func cutDetail(s string) string { return oneLine(s, 120) }
