package main

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/controllers"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
	"github.com/scriptlock/customer-operator/internal/scriptlock/sim"
)

// operatorKey is the default account's key of the operator the plugin's
// tests run.
const operatorKey = "plugin-test-operator-key"

// startOperator runs the real reconciler against cfg and a ScriptLock
// simulator for the rest of the test, with tune applied to it before it
// starts, and returns the simulator.
func startOperator(t *testing.T, cfg *rest.Config, tune func(*controllers.CustomerReconciler)) *sim.Server {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	s := sim.New(sim.WithAccount(operatorKey))
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: new(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &controllers.CustomerReconciler{
		Client:           mgr.GetClient(),
		APIReader:        mgr.GetAPIReader(),
		Recorder:         mgr.GetEventRecorder("scriptlock-customer-operator"),
		Accounts:         scriptlock.NewPool(scriptlock.Options{BaseURL: srv.URL, APIKey: operatorKey, QPS: 100, Burst: 100}, nil),
		ResyncPeriod:     time.Hour,
		PermanentBackoff: time.Second, PermanentBackoffMax: 2 * time.Second,
	}
	if tune != nil {
		tune(r)
	}
	if err := r.SetupWithManager(mgr, 2); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return s
}
