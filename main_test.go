package main

import (
	"bytes"
	"context"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"go.uber.org/zap/zapcore"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

func TestAManagerWithoutLeaderElectionRefusesBesideALiveLeader(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_000_000, 0)
	lease := func(holder string, renewed time.Duration) *coordinationv1.Lease {
		secs := int32(15)
		return &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ops", Name: "lease"},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity: &holder, LeaseDurationSeconds: &secs,
				RenewTime: &metav1.MicroTime{Time: now.Add(-renewed)},
			},
		}
	}
	cases := []struct {
		name   string
		lease  *coordinationv1.Lease
		refuse bool
	}{
		{"no lease: no other manager ever elected", nil, false},
		{"a lease renewed 3 s ago: a leader is running", lease("pod-a", 3*time.Second), true},
		{"a lease not renewed for a minute: its holder is gone", lease("pod-a", time.Minute), false},
		{"a released lease (no holder)", lease("", time.Second), false},
		{"a lease in another namespace does not count", func() *coordinationv1.Lease {
			l := lease("pod-a", time.Second)
			l.Namespace = "elsewhere"
			return l
		}(), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := fake.NewClientBuilder().WithScheme(scheme)
			if tc.lease != nil {
				b = b.WithObjects(tc.lease)
			}
			err := refuseBesideALeader(context.Background(), b.Build(), "ops", "lease", now)
			if (err != nil) != tc.refuse {
				t.Fatalf("refused: %v, want %v", err, tc.refuse)
			}
			if err != nil && !strings.Contains(err.Error(), "--leader-elect") {
				t.Fatalf("the error must say how to fix it: %v", err)
			}
		})
	}
}

// TestServingFlags: the manager's defaults serve metrics as kubebuilder
// does (HTTPS on :8443 behind TokenReview + SubjectAccessReview, HTTP/2
// off) and no pprof; the flags reach the manager's options.
func TestServingFlags(t *testing.T) {
	parse := func(args ...string) ctrl.Options {
		t.Helper()
		var cfg config
		fs := flag.NewFlagSet("manager", flag.ContinueOnError)
		bindFlags(fs, &cfg)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return managerOptions(cfg, runtime.NewScheme(), cache.Options{})
	}
	// In a Pod (this test runs outside one) the default is --metrics-secure.
	o := parse("--metrics-secure")
	if m := o.Metrics; m.BindAddress != ":8443" || !m.SecureServing || m.FilterProvider == nil || len(m.TLSOpts) == 0 {
		t.Errorf("secure metrics: %q secure=%v filter=%v tlsOpts=%d; want :8443, HTTPS, authn/authz filter, HTTP/2 off",
			m.BindAddress, m.SecureServing, m.FilterProvider != nil, len(m.TLSOpts))
	}
	if m := parse().Metrics; m.SecureServing != inCluster() {
		t.Errorf("--metrics-secure must default to %v (in a cluster: %v)", inCluster(), inCluster())
	}
	if o.PprofBindAddress != "" {
		t.Errorf("pprof should be off by default, got %q", o.PprofBindAddress)
	}

	o = parse("--metrics-secure=false", "--metrics-bind-address=127.0.0.1:8080", "--pprof-bind-address=127.0.0.1:6060", "--enable-http2")
	if m := o.Metrics; m.BindAddress != "127.0.0.1:8080" || m.SecureServing || m.FilterProvider != nil || len(m.TLSOpts) != 0 {
		t.Errorf("--metrics-secure=false --enable-http2: %+v", m)
	}
	if o.PprofBindAddress != "127.0.0.1:6060" {
		t.Errorf("--pprof-bind-address not passed on: %q", o.PprofBindAddress)
	}
}

func TestMemoryLimitFollowsTheContainersLimit(t *testing.T) {
	tests := []struct {
		name, gomemlimit, container string
		want                        int64
		ok                          bool
	}{
		{"256Mi less 64Mi", "", "268435456", 192 << 20, true},
		{"the Deployment's 384Mi less 64Mi", "", "402653184", 320 << 20, true},
		{"1Gi less 64Mi", "", "1073741824", 960 << 20, true},
		{"at least half of a small limit", "", "67108864", 32 << 20, true},
		{"GOMEMLIMIT set by hand wins", "200MiB", "268435456", 0, false},
		{"no container limit", "", "", 0, false},
		{"not a number of bytes", "", "256Mi", 0, false},
		{"zero", "", "0", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := memoryLimit(tt.gomemlimit, tt.container)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("memoryLimit(%q, %q) = %d, %v; want %d, %v", tt.gomemlimit, tt.container, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// The change log promises one line per ScriptLock write: its logger writes
// every line of a burst, where the manager's own logger (controller-runtime's
// production zap, which samples) keeps about 100 a second of one message.
func TestTheChangeLogWritesEveryLineOfABurst(t *testing.T) {
	count := func(newLog func(zap.Options) logr.Logger) int {
		var out bytes.Buffer
		fs := flag.NewFlagSet("manager", flag.ContinueOnError)
		opts := zap.Options{}
		opts.BindFlags(fs)
		if err := fs.Parse([]string{"--zap-log-level=error"}); err != nil {
			t.Fatal(err)
		}
		opts.DestWriter = &out
		log := newLog(opts)
		for i := range 1000 {
			log.Info("ScriptLock write", "recordID", i)
		}
		return strings.Count(out.String(), `"ScriptLock write"`)
	}
	if n := count(changelogLogger); n != 1000 {
		t.Fatalf("the change log's logger wrote %d lines of 1000, with --zap-log-level=error", n)
	}
	sampled := func(o zap.Options) logr.Logger {
		o.Level = zapcore.InfoLevel
		return zap.New(zap.UseFlagOptions(&o))
	}
	if n := count(sampled); n >= 1000 {
		t.Fatalf("the manager's own logger wrote all %d lines: the burst does not show what sampling drops", n)
	}
}
