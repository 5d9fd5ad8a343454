package main

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

func rec(id, email string) scriptlock.Customer {
	return scriptlock.Customer{ID: id, FirstName: "First", LastName: "Last", Email: email}
}

func TestBaseName(t *testing.T) {
	for _, tc := range []struct{ name, email, want string }{
		{"lower-cases and replaces punctuation", "Alice.Smith@Example.COM", "alice-smith-example-com"},
		{"collapses runs of symbols into one dash", "a..+_b@x.io", "a-b-x-io"},
		{"trims dashes at both ends", "_a@b.c_", "a-b-c"},
		{"drops non-ASCII letters", "jürgen@müller.de", "j-rgen-m-ller-de"},
		{"symbols only give an empty base", "@@.", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := baseName(tc.email); got != tc.want {
				t.Errorf("baseName(%q) = %q, want %q", tc.email, got, tc.want)
			}
		})
	}
}

// checkNames fails unless every name is a DNS-1123 label and subdomain of
// at most 63 characters and no two are equal.
func checkNames(t *testing.T, names []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, n := range names {
		if errs := validation.IsDNS1123Subdomain(n); len(errs) > 0 {
			t.Errorf("name %q is not a DNS-1123 subdomain: %v", n, errs)
		}
		if errs := validation.IsDNS1123Label(n); len(errs) > 0 {
			t.Errorf("name %q is not a DNS-1123 label: %v", n, errs)
		}
		if len(n) > maxNameLen {
			t.Errorf("name %q has %d characters, more than %d", n, len(n), maxNameLen)
		}
		if seen[n] {
			t.Errorf("name %q given twice", n)
		}
		seen[n] = true
	}
}

func TestAssignNames(t *testing.T) {
	long := strings.Repeat("a", 70) + "@example.com"
	long2 := strings.Repeat("a", 70) + "@example.org" // same first 54 characters as long
	exactly63 := strings.Repeat("b", 63-len("-x-io")) + "@x.io"
	for _, tc := range []struct {
		name    string
		records []scriptlock.Customer
		taken   []string
		// want maps record ids to exact names; "" means "only check validity".
		want map[string]string
		// hashed lists ids whose name must carry a hash suffix.
		hashed []string
	}{
		{
			name:    "a plain email keeps its readable name",
			records: []scriptlock.Customer{rec("1", "alice@example.com")},
			want:    map[string]string{"1": "alice-example-com"},
		},
		{
			name:    "two emails with the same name: the smaller id keeps the plain name",
			records: []scriptlock.Customer{rec("10", "a-b@x.io"), rec("9", "a.b@x.io")},
			want:    map[string]string{"9": "a-b-x-io", "10": "a-b-x-io-" + idHash("10", 0)},
			hashed:  []string{"10"},
		},
		{
			name:    "a name of exactly 63 characters is not cut",
			records: []scriptlock.Customer{rec("1", exactly63)},
			want:    map[string]string{"1": baseName(exactly63)},
		},
		{
			name:    "an over-long email is cut and gets a hash",
			records: []scriptlock.Customer{rec("1", long)},
			want:    map[string]string{"1": strings.Repeat("a", 54) + "-" + idHash("1", 0)},
			hashed:  []string{"1"},
		},
		{
			name:    "two over-long emails that agree after the cut differ by hash",
			records: []scriptlock.Customer{rec("1", long), rec("2", long2)},
			hashed:  []string{"1", "2"},
		},
		{
			name:    "an email of symbols only falls back to customer-<hash>",
			records: []scriptlock.Customer{rec("5", "-@-.-")},
			want:    map[string]string{"5": "customer-" + idHash("5", 0)},
			hashed:  []string{"5"},
		},
		{
			name:    "a name that exists in the namespace is not reused",
			records: []scriptlock.Customer{rec("3", "carol@example.com")},
			taken:   []string{"carol-example-com"},
			want:    map[string]string{"3": "carol-example-com-" + idHash("3", 0)},
			hashed:  []string{"3"},
		},
		{
			name:    "a hashed name that is taken too gets another hash",
			records: []scriptlock.Customer{rec("3", "carol@example.com")},
			taken:   []string{"carol-example-com", "carol-example-com-" + idHash("3", 0)},
			want:    map[string]string{"3": "carol-example-com-" + idHash("3", 1)},
			hashed:  []string{"3"},
		},
		{
			name: "a plain name that equals another record's hashed name still ends unique",
			records: []scriptlock.Customer{
				rec("1", "d@x.io"), rec("2", "d@x.io."), rec("3", "d-x-io-"+idHash("2", 0)+"@"),
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			taken := map[string]bool{}
			for _, n := range tc.taken {
				taken[n] = true
			}
			records := slices.Clone(tc.records)
			sortRecords(records)
			names := assignNames(records, taken)
			checkNames(t, names)
			got := map[string]string{}
			for i, r := range records {
				got[r.ID] = names[i]
				if taken[names[i]] {
					t.Errorf("record %s got the taken name %q", r.ID, names[i])
				}
			}
			for id, want := range tc.want {
				if got[id] != want {
					t.Errorf("record %s: name %q, want %q", id, got[id], want)
				}
			}
			for _, id := range tc.hashed {
				if !strings.HasSuffix(got[id], "-"+idHash(id, 0)) && !strings.HasSuffix(got[id], "-"+idHash(id, 1)) {
					t.Errorf("record %s: name %q has no hash suffix", id, got[id])
				}
			}

			// Deterministic: the same records in another order, named
			// again, give every record the same name.
			shuffled := slices.Clone(tc.records)
			rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			sortRecords(shuffled)
			again := assignNames(shuffled, taken)
			for i, r := range shuffled {
				if again[i] != got[r.ID] {
					t.Errorf("record %s: named %q, then %q", r.ID, got[r.ID], again[i])
				}
			}
		})
	}
}

// TestAssignNamesMany names many colliding and over-long emails at once.
func TestAssignNamesMany(t *testing.T) {
	var records []scriptlock.Customer
	for i := range 500 {
		local := strings.Repeat("x", i%80)
		records = append(records,
			rec(fmt.Sprint(2*i+1), local+"@Example.com"),
			rec(fmt.Sprint(2*i+2), local+"+"+fmt.Sprint(i%3)+"@example.com"))
	}
	sortRecords(records)
	checkNames(t, assignNames(records, map[string]bool{"example-com": true}))
}

func TestSortRecords(t *testing.T) {
	records := []scriptlock.Customer{{ID: "b"}, {ID: "10"}, {ID: "9"}, {ID: "010"}, {ID: "a"}, {ID: "100"}}
	sortRecords(records)
	var ids []string
	for _, r := range records {
		ids = append(ids, r.ID)
	}
	want := []string{"9", "010", "10", "100", "a", "b"}
	if !slices.Equal(ids, want) {
		t.Errorf("order %v, want %v", ids, want)
	}
}

func TestRecordProblems(t *testing.T) {
	valid := scriptlock.Customer{ID: "42", Company: "Acme", FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com"}
	edit := func(f func(*scriptlock.Customer)) scriptlock.Customer {
		c := valid
		f(&c)
		return c
	}
	for _, tc := range []struct {
		name string
		in   scriptlock.Customer
		want string // a substring of the joined problems; "" means valid
	}{
		{"a complete record is valid", valid, ""},
		{"an empty company is valid", edit(func(c *scriptlock.Customer) { c.Company = "" }), ""},
		{"255 multi-byte characters are within the limit", edit(func(c *scriptlock.Customer) { c.FirstName = strings.Repeat("é", 255) }), ""},
		{"a non-numeric id that fits the pattern is valid", edit(func(c *scriptlock.Customer) { c.ID = "cus_01.A-b" }), ""},
		{"an email of exactly 254 characters is valid", edit(func(c *scriptlock.Customer) { c.Email = strings.Repeat("a", 254-len("@x.io")) + "@x.io" }), ""},
		{"an empty first name is refused", edit(func(c *scriptlock.Customer) { c.FirstName = "" }), "firstname is empty"},
		{"an empty last name is refused", edit(func(c *scriptlock.Customer) { c.LastName = "" }), "lastname is empty"},
		{"a first name over 255 characters is refused", edit(func(c *scriptlock.Customer) { c.FirstName = strings.Repeat("a", 256) }), "firstname has 256 characters"},
		{"a last name over 255 characters is refused", edit(func(c *scriptlock.Customer) { c.LastName = strings.Repeat("a", 256) }), "lastname has 256 characters"},
		{"a company over 255 characters is refused", edit(func(c *scriptlock.Customer) { c.Company = strings.Repeat("a", 256) }), "company has 256 characters"},
		{"an empty email is refused", edit(func(c *scriptlock.Customer) { c.Email = "" }), "email is empty"},
		{"an email over 254 characters is refused", edit(func(c *scriptlock.Customer) { c.Email = strings.Repeat("a", 250) + "@x.io" }), "email has 255 characters"},
		{"an email without @ is refused", edit(func(c *scriptlock.Customer) { c.Email = "ada.example.com" }), `email "ada.example.com" must be a valid address`},
		{"an email without a dot in the domain is refused", edit(func(c *scriptlock.Customer) { c.Email = "ada@localhost" }), "must be a valid address"},
		{"an email with a space is refused", edit(func(c *scriptlock.Customer) { c.Email = "ada lovelace@example.com" }), "must be a valid address"},
		{"an email with two @ is refused", edit(func(c *scriptlock.Customer) { c.Email = "a@b@example.com" }), "must be a valid address"},
		{"an id with a space cannot be a customerID", edit(func(c *scriptlock.Customer) { c.ID = "4 2" }), "cannot be a spec.customerID"},
		{"an id starting with a dot cannot be a customerID", edit(func(c *scriptlock.Customer) { c.ID = ".42" }), "cannot be a spec.customerID"},
		{"an id over 64 characters cannot be a customerID", edit(func(c *scriptlock.Customer) { c.ID = strings.Repeat("1", 65) }), "cannot be a spec.customerID"},
		{"a company with a trailing space is refused", edit(func(c *scriptlock.Customer) { c.Company = "Spaced Co " }), "company \"Spaced Co \" must not begin or end with whitespace"},
		{"a last name with a control character is refused", edit(func(c *scriptlock.Customer) { c.LastName = "Love\u0007lace" }), `lastname "Love\alace" must not contain control characters`},
		{"inner double spaces are valid", edit(func(c *scriptlock.Customer) { c.Company = "Two  Spaces" }), ""},
		{"all problems are reported together", scriptlock.Customer{ID: "1", Email: "x"}, `firstname is empty; lastname is empty; email "x" has 1 characters (at least 3); email "x" must be a valid address`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(recordProblems(tc.in), "; ")
			switch {
			case tc.want == "" && got != "":
				t.Errorf("problems %q, want none", got)
			case tc.want != "" && !strings.Contains(got, tc.want):
				t.Errorf("problems %q, want them to contain %q", got, tc.want)
			}
		})
	}
}

func TestQuoteShortCutsLongValues(t *testing.T) {
	got := quoteShort(strings.Repeat("é", 100))
	if len(got) > 80 || !strings.HasSuffix(got, "...") || strings.Contains(got, `\x`) {
		t.Errorf("quoteShort gave %q", got)
	}
}

func TestManifestYAML(t *testing.T) {
	r := scriptlock.Customer{ID: "42", FirstName: "Ada", LastName: "Lovelace", Email: "Ada@Example.com"}
	for _, tc := range []struct {
		name string
		opts manifestOptions
	}{
		{"orphan without credentials", manifestOptions{Namespace: "sales", DeletionPolicy: v1alpha1.DeletionPolicyOrphan}},
		{"delete with credentials", manifestOptions{Namespace: "default", DeletionPolicy: v1alpha1.DeletionPolicyDelete, CredentialsSecret: "acct"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := manifestYAML(toCustomer(r, "ada-example-com", tc.opts))
			if err != nil {
				t.Fatal(err)
			}
			for _, unwanted := range []string{"creationTimestamp", "status", "company", "adoption", "null", "{}"} {
				if strings.Contains(string(out), unwanted) {
					t.Errorf("manifest contains %q:\n%s", unwanted, out)
				}
			}
			var got v1alpha1.Customer
			if err := yaml.UnmarshalStrict(out, &got); err != nil {
				t.Fatalf("manifest does not decode into a Customer: %v\n%s", err, out)
			}
			want := v1alpha1.CustomerSpec{FirstName: "Ada", LastName: "Lovelace", Email: "Ada@Example.com",
				DeletionPolicy: tc.opts.DeletionPolicy, CustomerID: "42"}
			if tc.opts.CredentialsSecret != "" {
				want.CredentialsSecretRef = &v1alpha1.SecretReference{Name: tc.opts.CredentialsSecret}
			}
			if got.APIVersion != "licensing.scriptlock.com/v1alpha1" || got.Kind != "Customer" ||
				got.Name != "ada-example-com" || got.Namespace != tc.opts.Namespace {
				t.Errorf("header %s %s %s/%s", got.APIVersion, got.Kind, got.Namespace, got.Name)
			}
			if !reflect.DeepEqual(got.Spec, want) {
				t.Errorf("spec %+v, want %+v", got.Spec, want)
			}
		})
	}
}
