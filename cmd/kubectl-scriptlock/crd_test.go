package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// TestEmbeddedCRDIsCurrent fails when customer_crd.yaml is not the CRD
// make manifests generates: run `go generate ./cmd/kubectl-scriptlock`.
func TestEmbeddedCRDIsCurrent(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "licensing.scriptlock.com_customers.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(customerCRD, want) {
		t.Fatal("cmd/kubectl-scriptlock/customer_crd.yaml is stale: run `go generate ./cmd/kubectl-scriptlock` (make build does)")
	}
	if _, err := loadValidator(); err != nil {
		t.Fatal(err)
	}
}

// edgeRecords are records at and past every limit of the CRD: whitespace,
// control characters, lengths, the email rule and the customerID pattern.
// want is a substring of the problems; "" means the API server accepts it.
var edgeRecords = []struct {
	name string
	in   scriptlock.Customer
	want string
}{
	{"valid", rec("42", "ada@example.com"), ""},
	{"a leading tab", scriptlock.Customer{ID: "1", FirstName: "\tAda", LastName: "L", Email: "a@x.io"}, "must not begin or end with whitespace"},
	{"a trailing newline", scriptlock.Customer{ID: "1", FirstName: "A", LastName: "L\n", Email: "a@x.io"}, "lastname"},
	{"a leading space in the email", scriptlock.Customer{ID: "1", FirstName: "A", LastName: "L", Email: " a@x.io"}, "email"},
	{"a no-break space is not \\s", scriptlock.Customer{ID: "1", FirstName: "A\u00a0", LastName: "L", Email: "a@x.io"}, ""},
	{"DEL is a control character", scriptlock.Customer{ID: "1", FirstName: "A\x7fB", LastName: "L", Email: "a@x.io"}, "must not contain control characters"},
	{"an inner newline is a control character", scriptlock.Customer{ID: "1", Company: "A\nB", FirstName: "A", LastName: "L", Email: "a@x.io"}, "company"},
	{"255 characters", scriptlock.Customer{ID: "1", FirstName: strings.Repeat("ß", 255), LastName: "L", Email: "a@x.io"}, ""},
	{"256 characters", scriptlock.Customer{ID: "1", FirstName: "A", LastName: strings.Repeat("ß", 256), Email: "a@x.io"}, "lastname has 256 characters (at most 255)"},
	{"an email of 3 characters cannot match the rule", scriptlock.Customer{ID: "1", FirstName: "A", LastName: "L", Email: "a@b"}, "must be a valid address"},
	{"the shortest valid email", scriptlock.Customer{ID: "1", FirstName: "A", LastName: "L", Email: "a@b.c"}, ""},
	{"a non-ASCII email", scriptlock.Customer{ID: "1", FirstName: "A", LastName: "L", Email: "jürgen@müller.de"}, ""},
	{"an email of 255 characters", scriptlock.Customer{ID: "1", FirstName: "A", LastName: "L", Email: strings.Repeat("a", 250) + "@x.io"}, "email has 255 characters (at most 254)"},
	{"an id of 64 characters", rec(strings.Repeat("9", 64), "a@x.io"), ""},
	{"an id of 65 characters", rec(strings.Repeat("9", 65), "a@x.io"), "cannot be a spec.customerID"},
	{"an id starting with '_'", rec("_1", "a@x.io"), "cannot be a spec.customerID"},
	{"an id with a slash", rec("1/2", "a@x.io"), "cannot be a spec.customerID"},
	{"an empty id", rec("", "a@x.io"), ""}, // spec.customerID is then omitted: the Customer creates a record
}

func TestRecordProblemsEdgeCases(t *testing.T) {
	for _, tc := range edgeRecords {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(recordProblems(tc.in), "; ")
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("problems %q, want %q", got, tc.want)
			}
			if strings.ContainsAny(got, "\n\t\x7f") {
				t.Errorf("problems are not one safe line: %q", got)
			}
		})
	}
}

// TestRecordProblemsAgreesWithTheAPIServer creates a Customer for every
// edge record in a real kube-apiserver: it must refuse exactly those that
// recordProblems reports.
func TestRecordProblemsAgreesWithTheAPIServer(t *testing.T) {
	c, _ := startAPIServer(t)
	for i, tc := range edgeRecords {
		cu := toCustomer(tc.in, fmt.Sprintf("edge-%d", i), manifestOptions{Namespace: "default", DeletionPolicy: "Orphan"})
		cu.ObjectMeta = metav1.ObjectMeta{Name: cu.Name, Namespace: cu.Namespace}
		err := c.Create(context.Background(), cu)
		problems := recordProblems(tc.in)
		if (err != nil) != (len(problems) > 0) {
			t.Errorf("%s: the API server says %v, recordProblems says %q", tc.name, err, problems)
		}
	}
}
