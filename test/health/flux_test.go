package health

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// fluxExprs are the Customer entry of spec.healthCheckExprs in
// config/flux/health-check-exprs.yaml.
type fluxExprs struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	InProgress string `json:"inProgress"`
	Failed     string `json:"failed"`
	Current    string `json:"current"`
}

func loadFluxExprs(t *testing.T) fluxExprs {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "config", "flux", "health-check-exprs.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var ks struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Spec       struct {
			HealthCheckExprs []fluxExprs `json:"healthCheckExprs"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &ks); err != nil {
		t.Fatal(err)
	}
	if ks.APIVersion != "kustomize.toolkit.fluxcd.io/v1" || ks.Kind != "Kustomization" {
		t.Fatalf("not a Flux Kustomization: %s %s", ks.APIVersion, ks.Kind)
	}
	for _, e := range ks.Spec.HealthCheckExprs {
		if e.APIVersion == "licensing.scriptlock.com/v1alpha1" && e.Kind == "Customer" {
			return e
		}
	}
	t.Fatal("no healthCheckExprs entry for licensing.scriptlock.com/v1alpha1 Customer")
	return fluxExprs{}
}

// fluxProgram parses an expression as Flux's runtime/cel NewExpression
// does for health checks: the same environment options, parsed (not
// compiled: no declared variables, the object's top-level fields are the
// variables), evaluated with the object as the activation.
func fluxProgram(t *testing.T, expr string) cel.Program {
	t.Helper()
	env, err := cel.NewEnv(
		cel.HomogeneousAggregateLiterals(),
		cel.EagerlyValidateDeclarations(true),
		cel.DefaultUTCTimeZone(true),
		cel.CrossTypeNumericComparisons(true),
		cel.OptionalTypes(),
		ext.Strings(),
		ext.Sets(),
		ext.Encoders(),
	)
	if err != nil {
		t.Fatal(err)
	}
	ast, iss := env.Parse(expr)
	if iss != nil && iss.Err() != nil {
		t.Fatalf("parsing %q: %v", expr, iss.Err())
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.InterruptCheckFrequency(100))
	if err != nil {
		t.Fatal(err)
	}
	return prg
}

// fluxEvaluate is Flux's StatusEvaluator.Evaluate (RFC 0009): InProgress
// while a present status.observedGeneration differs from
// metadata.generation; then the first of inProgress, failed, current that
// is true; else InProgress. An evaluation error is what Flux's generic
// status reader turns into Unknown (and the health check keeps waiting).
func fluxEvaluate(obj *unstructured.Unstructured, inProg, fail, cur cel.Program) (string, error) {
	og, found, err := unstructured.NestedInt64(obj.Object, "status", "observedGeneration")
	if err != nil {
		return "", err
	}
	if found {
		if g, ok, err := unstructured.NestedInt64(obj.Object, "metadata", "generation"); err != nil {
			return "", err
		} else if ok && g != og {
			return inProgress, nil
		}
	}
	for _, e := range []struct {
		prg    cel.Program
		status string
	}{{inProg, inProgress}, {fail, failed}, {cur, current}} {
		val, _, err := e.prg.ContextEval(context.Background(), obj.UnstructuredContent())
		if err != nil {
			return unknown, err
		}
		b, ok := val.(types.Bool)
		if !ok {
			return unknown, fmt.Errorf("not a boolean: %v", val)
		}
		if b {
			return e.status, nil
		}
	}
	return inProgress, nil
}

// TestFluxHealthCheckExprs evaluates config/flux's expressions the way Flux
// does over every fixture.
func TestFluxHealthCheckExprs(t *testing.T) {
	e := loadFluxExprs(t)
	inProg, fail, cur := fluxProgram(t, e.InProgress), fluxProgram(t, e.Failed), fluxProgram(t, e.Current)
	for _, f := range loadFixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			got, err := fluxEvaluate(f.obj.DeepCopy(), inProg, fail, cur)
			want := expected[f.name].flux
			if got != want {
				t.Errorf("Flux: %s (error %v), want %s", got, err, want)
			}
			if err != nil && want != unknown {
				t.Errorf("evaluation error: %v", err)
			}
		})
	}
}

// TestFluxNoStatusIsNeverCurrent: a Customer without status makes the
// expressions fail to evaluate (Flux: Unknown, keeps waiting) unless it is
// paused; with an empty status it is InProgress. Either way the pipeline
// does not move on.
func TestFluxNoStatusIsNeverCurrent(t *testing.T) {
	e := loadFluxExprs(t)
	inProg, fail, cur := fluxProgram(t, e.InProgress), fluxProgram(t, e.Failed), fluxProgram(t, e.Current)
	for _, f := range loadFixtures(t) {
		if f.name != "just-applied" {
			continue
		}
		got, err := fluxEvaluate(f.obj.DeepCopy(), inProg, fail, cur)
		if got != unknown || err == nil {
			t.Errorf("no status: %s %v, want an evaluation error (Unknown)", got, err)
		}
		empty := f.obj.DeepCopy()
		empty.Object["status"] = map[string]any{}
		if got, err := fluxEvaluate(empty, inProg, fail, cur); got != inProgress || err != nil {
			t.Errorf("status: {}: %s %v, want InProgress", got, err)
		}
		return
	}
	t.Fatal("no fixture just-applied")
}
