package manifests

import (
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
)

// safetyAnnotations are the annotations api/v1alpha1 declares (every
// constant named ...Annotation), read from the source so that an
// annotation added there without the policy fails this test.
func safetyAnnotations(t *testing.T) []string {
	t.Helper()
	path := filepath.Join(repoRoot(t), "api", "v1alpha1", "customer_types.go")
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if !strings.HasSuffix(n.Name, "Annotation") || i >= len(vs.Values) {
					continue
				}
				// A switch is documented as `set to "true"`; an annotation
				// that carries a value (an account fingerprint) is not one.
				if vs.Doc == nil || !strings.Contains(vs.Doc.Text(), `set to "true"`) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("%s is not a string literal", n.Name)
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, v)
			}
		}
	}
	// The two the operator and the policy read today; more may come.
	for _, want := range []string{v1alpha1.PausedAnnotation, v1alpha1.DeletionProtectionAnnotation} {
		found := false
		for _, a := range out {
			found = found || a == want
		}
		if !found {
			t.Fatalf("api/v1alpha1 declares %v, without %s: the source reading is broken", out, want)
		}
	}
	return out
}

// nearMisses are values a person may mean as "true" (or "false") that the
// operator would not read as such; the last two check the refusal of a
// long value and of one with a line break (which a messageExpression may
// not hold) still names the annotation.
var nearMisses = []string{"True", "TRUE", "yes", "1", "on", " true", "true ", "", "False", "no",
	strings.Repeat("yes", 400), "true\n"}

// TestSafetyAnnotationsAcceptOnlyTrueOrFalse applies the shipped admission
// policy to a real kube-apiserver and checks that every safety annotation
// of api/v1alpha1 accepts "true" and "false" only: a near miss
// ("True", "yes", ...) that the operator would silently read as "not
// paused" or "not protected" is refused at create and at update, with a
// message that names the annotation. A Customer that already held such a
// value before the policy existed can still be updated (its finalizer
// removed, its spec fixed) as long as the value does not change, and it
// cannot be deleted while deletion-protection holds anything but "false".
func TestSafetyAnnotationsAcceptOnlyTrueOrFalse(t *testing.T) { //nolint:gocyclo // one API server with the policy, then a check per annotation and value, each a line
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	annotations := safetyAnnotations(t)
	c := startAPIServer(t)
	objs := render(t, "default")
	crds := byKind(objs, "CustomResourceDefinition")
	if len(crds) != 1 {
		t.Fatalf("config/default should hold the Customer CRD, got %d CRDs", len(crds))
	}
	if err := apply(ctx, c, crds[0], false); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "the CRD to be established", func() (bool, error) {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := c.Get(ctx, client.ObjectKey{Name: crds[0].GetName()}, crd); err != nil {
			return false, err
		}
		for _, cond := range crd.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})

	seq := 0
	customer := func(ann map[string]string) *v1alpha1.Customer {
		seq++
		return &v1alpha1.Customer{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("c%d", seq), Namespace: "default", Annotations: ann},
			Spec: v1alpha1.CustomerSpec{FirstName: "Example", LastName: "Customer",
				Email: fmt.Sprintf("c%d@example.com", seq)},
		}
	}
	// Customers annotated before the policy was installed.
	legacy := map[string]*v1alpha1.Customer{}
	for _, a := range annotations {
		legacy[a] = customer(map[string]string{a: "True"})
		if err := c.Create(ctx, legacy[a]); err != nil {
			t.Fatal(err)
		}
	}
	approvedBefore := customer(map[string]string{v1alpha1.ApproveDeletionAnnotation: "true"})
	if err := c.Create(ctx, approvedBefore); err != nil {
		t.Fatal(err)
	}
	protectedByMistake := customer(map[string]string{v1alpha1.DeletionProtectionAnnotation: "yes"})
	if err := c.Create(ctx, protectedByMistake); err != nil {
		t.Fatal(err)
	}

	for _, kind := range []string{"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} {
		found := byKind(objs, kind)
		if len(found) != 1 {
			t.Fatalf("config/default should hold one %s, got %d", kind, len(found))
		}
		if err := apply(ctx, c, found[0], false); err != nil {
			t.Fatalf("applying %s: %v", kind, err)
		}
	}
	enforced, cancelWait := context.WithTimeout(ctx, 30*time.Second)
	defer cancelWait()
	waitFor(enforced, t, "the policy to be enforced", func() (bool, error) {
		return c.Create(ctx, customer(map[string]string{v1alpha1.PausedAnnotation: "True"}), client.DryRunAll) != nil, nil
	})

	refused := func(t *testing.T, err error, annotation, what string) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s was allowed", what)
		}
		if !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) {
			t.Errorf("%s: want 422 Invalid or 403 Forbidden, got %v", what, err)
		}
		for _, want := range []string{annotation, `"true" or "false"`} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: the refusal should say %q: %v", what, want, err)
			}
		}
	}
	for _, a := range annotations {
		t.Run(a, func(t *testing.T) {
			for _, v := range nearMisses {
				refused(t, c.Create(ctx, customer(map[string]string{a: v}), client.DryRunAll), a, fmt.Sprintf("creating with %s=%q", a, v))
			}
			for _, v := range []string{"true", "false"} {
				if err := c.Create(ctx, customer(map[string]string{a: v}), client.DryRunAll); err != nil {
					t.Errorf("creating with %s=%q: %v", a, v, err)
				}
			}

			// Set on an existing Customer: refused unless true or false.
			plain := customer(nil)
			if err := c.Create(ctx, plain); err != nil {
				t.Fatal(err)
			}
			for _, v := range nearMisses {
				err := c.Patch(ctx, plain.DeepCopy(), annotationPatch(a, &v))
				refused(t, err, a, fmt.Sprintf("setting %s=%q", a, v))
			}
			for _, v := range []string{"true", "false"} {
				if err := c.Patch(ctx, plain.DeepCopy(), annotationPatch(a, &v)); err != nil {
					t.Errorf("setting %s=%q: %v", a, v, err)
				}
			}

			// A value from before the policy: other changes go through
			// (the operator's finalizer, a spec fix); changing the value to
			// another near miss does not; fixing or removing it does.
			old := legacy[a]
			if err := c.Patch(ctx, old.DeepCopy(), client.RawPatch("application/merge-patch+json",
				[]byte(`{"metadata":{"finalizers":["`+v1alpha1.Finalizer+`"]},"spec":{"company":"Fixed Inc."}}`))); err != nil {
				t.Errorf("updating a Customer that held %s=\"True\" before the policy: %v", a, err)
			}
			if err := c.Patch(ctx, old.DeepCopy(), client.RawPatch("application/merge-patch+json",
				[]byte(`{"metadata":{"finalizers":null}}`))); err != nil {
				t.Errorf("removing the finalizer of a Customer that held %s=\"True\" before the policy: %v", a, err)
			}
			yes := "yes"
			refused(t, c.Patch(ctx, old.DeepCopy(), annotationPatch(a, &yes)), a, fmt.Sprintf("changing %s from \"True\" to \"yes\"", a))
			if err := c.Patch(ctx, old.DeepCopy(), annotationPatch(a, nil)); err != nil {
				t.Errorf("removing %s: %v", a, err)
			}
		})
	}

	t.Run("deletion protection by mistake still protects", func(t *testing.T) {
		err := c.Delete(ctx, protectedByMistake.DeepCopy())
		if err == nil {
			t.Fatalf("deleting a Customer annotated %s=\"yes\" was allowed", v1alpha1.DeletionProtectionAnnotation)
		}
		for _, want := range []string{v1alpha1.DeletionProtectionAnnotation, `"yes"`, "kubectl annotate customer " + protectedByMistake.Name} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the refusal should say %q: %v", want, err)
			}
		}
		no := "false"
		if err := c.Patch(ctx, protectedByMistake.DeepCopy(), annotationPatch(v1alpha1.DeletionProtectionAnnotation, &no)); err != nil {
			t.Fatal(err)
		}
		if err := c.Delete(ctx, protectedByMistake.DeepCopy()); err != nil {
			t.Errorf("deleting once deletion-protection is \"false\": %v", err)
		}
	})

	// An approval names the deletion it approves: an RFC 3339 time (the
	// Customer's deletionTimestamp). "true", which the operator read as an
	// approval of any later deletion, is refused, and so is anything else
	// that is not a time; a value stored before the policy may stay.
	t.Run(v1alpha1.ApproveDeletionAnnotation, func(t *testing.T) {
		a := v1alpha1.ApproveDeletionAnnotation
		for _, v := range []string{"2026-12-07T06:30:00Z", "2026-12-07T07:30:00+01:00", "2026-12-07T06:30:00.5Z"} {
			if err := c.Create(ctx, customer(map[string]string{a: v}), client.DryRunAll); err != nil {
				t.Errorf("creating with %s=%q: %v", a, v, err)
			}
		}
		plain := customer(nil)
		if err := c.Create(ctx, plain); err != nil {
			t.Fatal(err)
		}
		for _, v := range append([]string{"true", "false", "2026-12-07", "2026-12-07T06:30:00", "2026-12-07 06:30:00Z",
			"2026-12-07T06:30:00Z\n", "6e1a3b5c-5e0f-4c7a-9f3e-1d2c3b4a5f60"}, nearMisses...) {
			for what, err := range map[string]error{
				"creating": c.Create(ctx, customer(map[string]string{a: v}), client.DryRunAll),
				"setting":  c.Patch(ctx, plain.DeepCopy(), annotationPatch(a, &v)),
			} {
				if err == nil {
					t.Errorf("%s %s=%q was allowed", what, a, v)
					continue
				}
				if !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), "RFC 3339") {
					t.Errorf("%s %s=%q: the refusal should name the annotation and its form: %v", what, a, v, err)
				}
			}
		}
		if err := c.Patch(ctx, approvedBefore.DeepCopy(), client.RawPatch("application/merge-patch+json",
			[]byte(`{"spec":{"company":"Fixed Inc."}}`))); err != nil {
			t.Errorf("updating a Customer that held %s=\"true\" before the policy: %v", a, err)
		}
		v := time.Now().UTC().Format(time.RFC3339)
		if err := c.Patch(ctx, approvedBefore.DeepCopy(), annotationPatch(a, &v)); err != nil {
			t.Errorf("changing %s from \"true\" to a time: %v", a, err)
		}
	})

	t.Run(v1alpha1.DriftCheckIntervalAnnotation, func(t *testing.T) {
		a := v1alpha1.DriftCheckIntervalAnnotation
		for _, v := range []string{"1m", "5m", "1h30m", "24h", "90s"} {
			if err := c.Create(ctx, customer(map[string]string{a: v}), client.DryRunAll); err != nil {
				t.Errorf("creating with %s=%q: %v", a, v, err)
			}
		}
		for _, v := range []string{"30s", "59s", "25h", "1d", "soon", "", "5 m", "-5m", strings.Repeat("1h", 100)} {
			err := c.Create(ctx, customer(map[string]string{a: v}), client.DryRunAll)
			if err == nil {
				t.Errorf("creating with %s=%q was allowed", a, v)
				continue
			}
			if !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), "between 1m and 24h") {
				t.Errorf("creating with %s=%q: the refusal should name the annotation and its bounds: %v", a, v, err)
			}
		}
	})
}

// annotationPatch sets annotation a to *v, or removes it when v is nil.
func annotationPatch(a string, v *string) client.Patch {
	val := "null"
	if v != nil {
		val = strconv.Quote(*v)
	}
	return client.RawPatch("application/merge-patch+json",
		[]byte(fmt.Sprintf(`{"metadata":{"annotations":{%s:%s}}}`, strconv.Quote(a), val)))
}
