package health

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
)

// repoRoot is the module root, relative to this package.
const repoRoot = "../.."

// expectation is what each tool must report for one fixture. kstatus is
// sigs.k8s.io/cli-utils' own answer (which the operator cannot always
// change), flux the answer with config/flux's healthCheckExprs, argo the
// Argo CD health of config/argocd/health.lua.
type expectation struct {
	kstatus, flux, argo string
	why                 string // where the tools differ, and why
}

const (
	current     = "Current"
	inProgress  = "InProgress"
	failed      = "Failed"
	terminating = "Terminating"
	unknown     = "Unknown"

	healthy     = "Healthy"
	progressing = "Progressing"
	degraded    = "Degraded"
	suspended   = "Suspended"
)

var (
	stalledExp     = expectation{kstatus: failed, flux: failed, argo: degraded}
	reconcilingExp = expectation{kstatus: inProgress, flux: inProgress, argo: progressing}
	readyExp       = expectation{kstatus: current, flux: current, argo: healthy}
)

// expected has one entry per file in testdata/.
var expected = map[string]expectation{
	"just-applied": {kstatus: current, flux: unknown, argo: progressing,
		why: "no status at all: kstatus finds nothing to go by and says Current (the gap); every Flux expression that reads status fails to evaluate, " +
			"so Flux reports Unknown and waits; the fix for every tool is a CRD default status {observedGeneration: 0} (just-applied-status-defaulted)"},
	"just-applied-status-defaulted": {kstatus: inProgress, flux: inProgress, argo: progressing,
		why: "observedGeneration 0 != generation 1: kstatus and Flux's own check say InProgress"},
	"creating":        reconcilingExp,
	"ready-available": readyExp,

	"stalled-conflict":           stalledExp,
	"stalled-notfound":           stalledExp,
	"stalled-unauthorized":       stalledExp,
	"stalled-invalidcredentials": stalledExp,
	"stalled-accountchanged":     stalledExp,
	"stalled-storeddifferently":  stalledExp,
	"stalled-invalidid":          stalledExp,
	"stalled-apierror":           stalledExp,

	"reconciling-apierror":      reconcilingExp,
	"reconciling-ratelimited":   reconcilingExp,
	"reconciling-creating":      reconcilingExp,
	"reconciling-remotedeleted": reconcilingExp,

	"generation-behind-ready":   reconcilingExp,
	"generation-behind-stalled": reconcilingExp,

	"paused-ready": {kstatus: current, flux: failed, argo: suspended,
		why: "kstatus reads conditions only and the operator changes nothing while paused; the Flux expressions and Argo CD read the annotation"},
	"paused-stalled": {kstatus: failed, flux: failed, argo: suspended},
	"paused-just-applied": {kstatus: current, flux: failed, argo: suspended,
		why: "the paused annotation is read from metadata, so Flux needs no status here"},
	"paused-generation-behind": {kstatus: inProgress, flux: inProgress, argo: suspended,
		why: "Flux checks observedGeneration against generation before any expression"},

	"deleting": {kstatus: terminating, flux: inProgress, argo: progressing,
		why: "deletion bumps the generation; Flux's own observedGeneration check answers first"},
	"deleting-not-reached": {kstatus: terminating, flux: inProgress, argo: progressing},
	"deleting-deletion-blocked": {kstatus: terminating, flux: inProgress, argo: degraded,
		why: "kstatus and Flux look no further than the deletion / the bumped generation; the Lua reads the Stalled condition of the current generation"},
	"paused-deleting": {kstatus: terminating, flux: inProgress, argo: suspended},

	"observe-observed": readyExp,
	"observe-differs":  stalledExp,
	"observe-notfound": stalledExp,
}

type fixture struct {
	name string
	obj  *unstructured.Unstructured
	raw  []byte
}

func loadFixtures(t *testing.T) []fixture {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no fixtures in testdata: %v", err)
	}
	sort.Strings(paths)
	var out []fixture
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		// Decoded as the API machinery does (integers as int64), not as
		// float64 like a plain JSON decode.
		js, err := yaml.YAMLToJSONStrict(raw)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		name := strings.TrimSuffix(filepath.Base(p), ".yaml")
		if u.GetName() != name {
			t.Fatalf("%s: metadata.name %q must equal the file name", p, u.GetName())
		}
		if u.GetKind() != "Customer" || u.GroupVersionKind().Group != v1alpha1.GroupVersion.Group {
			t.Fatalf("%s: not a Customer: %s", p, u.GroupVersionKind())
		}
		out = append(out, fixture{name: name, obj: u, raw: raw})
	}
	return out
}

// TestFixturesCoverEveryState: every fixture has an expectation and every
// expectation a fixture; every Ready reason of the API appears, transient
// reasons with Reconciling=True and permanent ones with Stalled=True, as
// the operator's setReady writes them; and the paused, deleting and
// no-status states are there.
func TestFixturesCoverEveryState(t *testing.T) {
	fx := loadFixtures(t)
	seen := map[string]bool{}
	reasons := map[string]map[string]bool{} // reason -> "Stalled"/"Reconciling"/"Ready"
	var paused, deleting, noStatus bool
	for _, f := range fx {
		if _, ok := expected[f.name]; !ok {
			t.Errorf("fixture %s has no expectation", f.name)
		}
		seen[f.name] = true
		if f.obj.GetAnnotations()[v1alpha1.PausedAnnotation] == "true" {
			paused = true
		}
		if f.obj.GetDeletionTimestamp() != nil {
			deleting = true
		}
		if _, ok := f.obj.Object["status"]; !ok {
			noStatus = true
		}
		conds, _, _ := unstructured.NestedSlice(f.obj.Object, "status", "conditions")
		var readyReason string
		kinds := map[string]bool{}
		for _, c := range conds {
			m, _ := c.(map[string]any)
			switch m["type"] {
			case v1alpha1.ConditionReady:
				readyReason, _ = m["reason"].(string)
				if m["status"] == "True" {
					kinds["Ready"] = true
				}
			case v1alpha1.ConditionStalled, v1alpha1.ConditionReconciling:
				if m["status"] == "True" {
					kinds[m["type"].(string)] = true
				}
			}
		}
		if readyReason == "" {
			continue
		}
		if len(kinds) != 1 {
			t.Errorf("%s: exactly one of Ready=True, Stalled=True, Reconciling=True must hold (setReady), got %v", f.name, kinds)
		}
		if reasons[readyReason] == nil {
			reasons[readyReason] = map[string]bool{}
		}
		for k := range kinds {
			reasons[readyReason][k] = true
		}
	}
	for name := range expected {
		if !seen[name] {
			t.Errorf("expectation %s has no fixture testdata/%s.yaml", name, name)
		}
	}
	want := map[string][]string{
		v1alpha1.ReasonAvailable:          {"Ready"},
		v1alpha1.ReasonObserved:           {"Ready"},
		v1alpha1.ReasonConflict:           {"Stalled"},
		v1alpha1.ReasonNotFound:           {"Stalled"},
		v1alpha1.ReasonUnauthorized:       {"Stalled"},
		v1alpha1.ReasonInvalidCredentials: {"Stalled"},
		v1alpha1.ReasonDeletionBlocked:    {"Stalled"},
		v1alpha1.ReasonAccountChanged:     {"Stalled"},
		v1alpha1.ReasonStoredDifferently:  {"Stalled"},
		v1alpha1.ReasonInvalidID:          {"Stalled"},
		v1alpha1.ReasonDiffers:            {"Stalled"},
		v1alpha1.ReasonAPIError:           {"Stalled", "Reconciling"},
		v1alpha1.ReasonRateLimited:        {"Reconciling"},
		v1alpha1.ReasonCreating:           {"Reconciling"},
		v1alpha1.ReasonRemoteDeleted:      {"Reconciling"},
		v1alpha1.ReasonDeleting:           {"Reconciling"},
	}
	for reason, kinds := range want {
		for _, k := range kinds {
			if !reasons[reason][k] {
				t.Errorf("no fixture with Ready reason %s and %s", reason, k)
			}
		}
	}
	for reason := range reasons {
		if _, ok := want[reason]; !ok {
			t.Errorf("fixture uses Ready reason %s, which this test does not know", reason)
		}
	}
	if !paused || !deleting || !noStatus {
		t.Errorf("missing a paused (%v), deleting (%v) or no-status (%v) fixture", paused, deleting, noStatus)
	}
}
