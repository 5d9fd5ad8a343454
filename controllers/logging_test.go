package controllers

import (
	"io"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// countingSink counts the WithValues calls that reach a sink.
type countingSink struct {
	logr.LogSink
	withValues *int
}

func (s countingSink) WithValues(kv ...any) logr.LogSink {
	*s.withValues++
	return countingSink{LogSink: s.LogSink.WithValues(kv...), withValues: s.withValues}
}

func (s countingSink) WithName(name string) logr.LogSink {
	return countingSink{LogSink: s.LogSink.WithName(name), withValues: s.withValues}
}

func TestADeferredLoggerWritesWhatItsBaseWouldWithTheSameCaller(t *testing.T) {
	var lines []string
	base := funcr.New(func(prefix, args string) { lines = append(lines, prefix+" "+args) },
		funcr.Options{LogCaller: funcr.All, Verbosity: 1})

	write := func(l logr.Logger) {
		l = l.WithValues("a", 1).WithName("n").WithValues("b", "two")
		l.Info("first", "c", 3)
		l.V(1).Info("second")
		l.V(2).Info("not written")
		l.Error(nil, "third", "d", 4)
	}
	write(base)
	direct := lines
	lines = nil
	write(deferred(base))
	if len(direct) != 3 {
		t.Fatalf("the base logger wrote %d lines, want 3: %q", len(direct), direct)
	}
	if strings.Join(lines, "\n") != strings.Join(direct, "\n") {
		t.Fatalf("deferred wrote\n%s\nwant, as its base,\n%s", strings.Join(lines, "\n"), strings.Join(direct, "\n"))
	}
	if !strings.Contains(direct[0], "logging_test.go") {
		t.Fatalf("the caller is not this test's line: %s", direct[0])
	}
}

func TestAReconcileLoggerGivesItsValuesToTheBaseOnlyWhenItWrites(t *testing.T) {
	var lines []string
	calls := 0
	base := logr.New(countingSink{
		LogSink:    funcr.New(func(prefix, args string) { lines = append(lines, args) }, funcr.Options{}).GetSink(),
		withValues: &calls,
	})
	logs := reconcileLogs(base)

	// What controller-runtime does for every request before the reconciler
	// runs (and a waiting reconcile holds).
	l := logs(&reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "c1"}}).
		WithValues("reconcileID", "r1")
	if calls != 0 {
		t.Fatalf("building a reconcile's logger called the base's WithValues %d times, want 0", calls)
	}

	l.Info("one")
	l.Info("two")
	if calls != 1 {
		t.Fatalf("two lines called the base's WithValues %d times, want 1", calls)
	}
	want := `"controller"="customer" "controllerGroup"="licensing.scriptlock.com" "controllerKind"="Customer" ` +
		`"Customer"={"name"="c1" "namespace"="ns"} "namespace"="ns" "name"="c1" "reconcileID"="r1"`
	for _, line := range lines {
		if !strings.Contains(line, want) {
			t.Fatalf("a reconcile's line %s lacks the keys controller-runtime gives it: %s", line, want)
		}
	}

	logs(nil).Info("controller-wide")
	if got := lines[len(lines)-1]; strings.Contains(got, "namespace") || !strings.Contains(got, `"controller"="customer"`) {
		t.Fatalf("the controller's own logger wrote %s", got)
	}
}

// BenchmarkAWaitingReconcilesLogger measures what a reconcile that has not
// written a line yet holds: its logger as controller-runtime builds it, on
// the manager's zap logger, deferred or not (go test -bench
// AWaitingReconcilesLogger -benchmem ./controllers: B/op is that memory).
func BenchmarkAWaitingReconcilesLogger(b *testing.B) {
	base := zap.New(zap.WriteTo(io.Discard))
	req := &reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "c1"}}
	for _, bc := range []struct {
		name string
		logs func(*reconcile.Request) logr.Logger
	}{
		{"zap", func(req *reconcile.Request) logr.Logger {
			return base.WithValues("controller", "customer").WithValues("Customer", klog.KRef(req.Namespace, req.Name)).
				WithValues("namespace", req.Namespace, "name", req.Name)
		}},
		{"deferred", reconcileLogs(base)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = bc.logs(req).WithValues("reconcileID", "r1")
			}
		})
	}
}
