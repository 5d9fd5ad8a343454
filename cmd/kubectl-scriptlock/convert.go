package main

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// maxCustomerIDLen and customerIDPattern only decide how an id is shown
// (displayID); what the API server accepts is checked against the CRD
// itself (crd.go).
const maxCustomerIDLen = 64

var customerIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Name derivation: a DNS-1123 label (so also a subdomain) of at most 63
// characters, with an 8-hex-digit hash of the record id appended when the
// email had to be cut or when the name is already taken.
const (
	maxNameLen  = 63
	hashLen     = 8
	defaultBase = "customer"
)

// recordProblems returns why the API server would refuse a Customer built
// from r, or nil: the Customer is checked against the generated CRD's
// schema and CEL rules (crd.go), not a copy of them. The messages quote at
// most a short prefix of a value, so a hostile record cannot flood the
// terminal.
func recordProblems(r scriptlock.Customer) []string {
	v, err := loadValidator()
	if err != nil {
		return []string{"cannot check it: " + err.Error()}
	}
	// The name and namespace are checked apart (assignNames, the flags);
	// these stand-ins are valid.
	errs, err := v.validate(toCustomer(r, "name", manifestOptions{Namespace: "default", DeletionPolicy: v1alpha1.DeletionPolicyOrphan}))
	if err != nil {
		return []string{err.Error()}
	}
	return describeErrors(errs, func(path string) string {
		switch path {
		case "spec.firstName":
			return r.FirstName
		case "spec.lastName":
			return r.LastName
		case "spec.company":
			return r.Company
		case "spec.email":
			return r.Email
		case "spec.customerID":
			return r.ID
		}
		return ""
	})
}

// displayID shows a record id as is when it is a plain id, else quoted.
func displayID(id string) string {
	if len(id) <= maxCustomerIDLen && customerIDPattern.MatchString(id) {
		return id
	}
	return quoteShort(id)
}

// quoteShort quotes s, cut to 64 bytes on a rune boundary.
func quoteShort(s string) string {
	const limit = 64
	if len(s) <= limit {
		return strconv.Quote(s)
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "..."
}

// baseName turns an email into a name candidate: lower case, every run of
// characters other than a-z and 0-9 becomes one '-', no '-' at either end.
// It may be empty (an email of symbols only) or longer than maxNameLen.
func baseName(email string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(email) {
		if ('a' <= r && r <= 'z') || ('0' <= r && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimRight(b.String(), "-")
}

// idHash is a short, deterministic hash of a record id; attempt > 0 gives
// further values for the (astronomically rare) case that one is taken.
func idHash(id string, attempt int) string {
	in := id
	if attempt > 0 {
		in += "\x00" + strconv.Itoa(attempt)
	}
	sum := sha256.Sum256([]byte(in))
	return hex.EncodeToString(sum[:])[:hashLen]
}

// withHash returns base, cut so that the result fits maxNameLen, followed
// by '-' and a hash of the id.
func withHash(base, id string, attempt int) string {
	keep := maxNameLen - 1 - hashLen
	if len(base) > keep {
		base = strings.TrimRight(base[:keep], "-")
	}
	if base == "" {
		base = defaultBase
	}
	return base + "-" + idHash(id, attempt)
}

// preferredName is the name a record gets when nothing else claims it.
func preferredName(r scriptlock.Customer) string {
	base := baseName(r.Email)
	if base == "" || len(base) > maxNameLen {
		return withHash(base, r.ID, 0)
	}
	return base
}

// assignNames gives each record a name that is unique among them and not in
// taken (names that already exist in the target namespace). records must
// be sorted with sortRecords: the record with the smallest id keeps the
// plain name, so that records added to ScriptLock later, which get larger
// ids, never rename what an earlier import wrote.
func assignNames(records []scriptlock.Customer, taken map[string]bool) []string {
	used := make(map[string]bool, len(taken)+len(records))
	for n := range taken {
		used[n] = true
	}
	names := make([]string, len(records))
	for i, r := range records {
		name := preferredName(r)
		base := baseName(r.Email)
		for attempt := 0; used[name]; attempt++ {
			name = withHash(base, r.ID, attempt)
		}
		used[name] = true
		names[i] = name
	}
	return names
}

// sortRecords orders records by id, numerically when both ids are decimal
// (ScriptLock's ids grow), so that output and names do not depend on the
// order of the API's answer.
func sortRecords(records []scriptlock.Customer) {
	slices.SortStableFunc(records, func(a, b scriptlock.Customer) int {
		an, bn := isDecimal(a.ID), isDecimal(b.ID)
		switch {
		case an && bn:
			x, y := strings.TrimLeft(a.ID, "0"), strings.TrimLeft(b.ID, "0")
			if c := cmp.Compare(len(x), len(y)); c != 0 {
				return c
			}
			if c := cmp.Compare(x, y); c != 0 {
				return c
			}
		case an != bn:
			if an {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.ID, b.ID)
	})
}

func isDecimal(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// manifestOptions are the parts of a Customer that come from flags.
type manifestOptions struct {
	Namespace         string
	DeletionPolicy    v1alpha1.DeletionPolicy
	CredentialsSecret string
	// Observe writes managementPolicy: Observe.
	Observe bool
}

// toCustomer builds the Customer that manages record r under name. The
// fields are copied verbatim: the operator sends the spec as the whole
// truth, so any normalisation here would be written back to ScriptLock.
func toCustomer(r scriptlock.Customer, name string, o manifestOptions) *v1alpha1.Customer {
	c := &v1alpha1.Customer{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Customer"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: o.Namespace},
		Spec: v1alpha1.CustomerSpec{
			Company:        r.Company,
			FirstName:      r.FirstName,
			LastName:       r.LastName,
			Email:          r.Email,
			DeletionPolicy: o.DeletionPolicy,
			CustomerID:     r.ID,
		},
	}
	if o.CredentialsSecret != "" {
		c.Spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: o.CredentialsSecret}
	}
	if o.Observe {
		c.Spec.ManagementPolicy = v1alpha1.ManagementPolicyObserve
	}
	return c
}

// manifestYAML renders c as a YAML document for a Git repository: no
// status and no "creationTimestamp: null", which encoding a typed object
// otherwise produces.
func manifestYAML(c *v1alpha1.Customer) ([]byte, error) {
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(c)
	if err != nil {
		return nil, fmt.Errorf("converting Customer %s: %w", c.Name, err)
	}
	delete(obj, "status")
	unstructured.RemoveNestedField(obj, "metadata", "creationTimestamp")
	out, err := yaml.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encoding Customer %s: %w", c.Name, err)
	}
	return out, nil
}
