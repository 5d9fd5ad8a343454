package manifests

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
)

// TestKubectlGetWideShowsTheReadyMessage: the table a real kube-apiserver
// serves for `kubectl get customers` (the CRD's printer columns) has the
// Ready condition's reason and message as priority-1 columns, which
// kubectl shows with -o wide only, and fills them from the status.
func TestKubectlGetWideShowsTheReadyMessage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg, c := startControlPlane(t)
	for _, o := range render(t, "crd") {
		if err := apply(ctx, c, o, false); err != nil {
			t.Fatal(err)
		}
	}
	waitEstablished(ctx, t, c, "customers.licensing.scriptlock.com")

	const msg = "ScriptLock customer 42 matches the spec"
	cu := &v1alpha1.Customer{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "wide"},
		Spec:       v1alpha1.CustomerSpec{FirstName: "F", LastName: "L", Email: "wide@example.com"},
	}
	if err := c.Create(ctx, cu); err != nil {
		t.Fatal(err)
	}
	cu.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue,
		Reason: v1alpha1.ReasonAvailable, Message: msg, ObservedGeneration: cu.Generation, LastTransitionTime: metav1.Now()}}
	if err := c.Status().Update(ctx, cu); err != nil {
		t.Fatal(err)
	}

	// What kubectl asks for.
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(cfg.Host, "/")+"/apis/licensing.scriptlock.com/v1alpha1/namespaces/default/customers", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %v\n%s", req.URL, resp.Status, err, b)
	}
	var table metav1.Table
	if err := json.Unmarshal(b, &table); err != nil {
		t.Fatal(err)
	}
	if len(table.Rows) != 1 {
		t.Fatalf("%d rows, want 1", len(table.Rows))
	}
	cells := map[string]any{}
	priority := map[string]int32{}
	for i, col := range table.ColumnDefinitions {
		priority[col.Name] = col.Priority
		cells[col.Name] = table.Rows[0].Cells[i]
	}
	for name, want := range map[string]any{"Ready": "True", "Reason": v1alpha1.ReasonAvailable, "Message": msg} {
		if cells[name] != want {
			t.Errorf("column %s: %v, want %q (columns %v)", name, cells[name], want, priority)
		}
	}
	for name, want := range map[string]int32{"Ready": 0, "Reason": 1, "Message": 1} {
		if priority[name] != want {
			t.Errorf("column %s has priority %d, want %d (1: shown with -o wide only)", name, priority[name], want)
		}
	}
}
