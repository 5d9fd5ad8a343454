package controllers

import (
	"slices"
	"sync"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
)

// reconcileLogs returns the LogConstructor of the Customer controller: the
// keys controller-runtime's builder gives each reconcile's logger
// (controller, controllerGroup, controllerKind, Customer, namespace, name,
// and the reconcileID the controller adds), on a sink that hands them to
// base's sink only when the reconcile writes its first line.
//
// controller-runtime builds a reconcile's logger before the reconciler
// runs, and a zap logger's WithValues copies its encoder and takes a
// buffer of 1 KiB or more each time, three times per reconcile. With the
// derived concurrency, hundreds of workers wait for a slot holding such a
// logger (the Concurrency limit admits them after controller-runtime built
// it): about 12 MiB of the live heap in the 50,000 benchmark of
// 2026-12-07. Deferred, a waiting reconcile holds its key-value pairs only.
func reconcileLogs(base logr.Logger) func(*reconcile.Request) logr.Logger {
	log := deferred(base).WithValues("controller", "customer",
		"controllerGroup", v1alpha1.GroupVersion.Group, "controllerKind", "Customer")
	return func(req *reconcile.Request) logr.Logger {
		if req == nil {
			return log
		}
		return log.WithValues("Customer", klog.KRef(req.Namespace, req.Name),
			"namespace", req.Namespace, "name", req.Name)
	}
}

// deferred returns l on a deferredSink: the same lines, with the same
// keys, names and caller, as l would write.
func deferred(l logr.Logger) logr.Logger {
	base := l.GetSink()
	if base == nil {
		return l
	}
	if d, ok := base.(*deferredSink); ok {
		return logr.New(d)
	}
	if cd, ok := base.(logr.CallDepthLogSink); ok {
		base = cd.WithCallDepth(1) // the frame of deferredSink's Info or Error
	}
	return logr.New(&deferredSink{base: base})
}

// deferredSink is a logr.LogSink that keeps the key-value pairs given to
// WithValues and gives them to base the first time a line is written
// (then once for every later line of the same logger).
type deferredSink struct {
	base logr.LogSink
	kv   []any

	once  sync.Once
	bound logr.LogSink
}

var (
	_ logr.LogSink          = (*deferredSink)(nil)
	_ logr.CallDepthLogSink = (*deferredSink)(nil)
)

// Init is a no-op: base was initialised by the logger it came from, and
// logr.New's call depth is that of every logger.
func (s *deferredSink) Init(logr.RuntimeInfo) {}

// Enabled is base's answer.
func (s *deferredSink) Enabled(level int) bool { return s.base.Enabled(level) }

// Info writes through base with the kept pairs.
func (s *deferredSink) Info(level int, msg string, kv ...any) {
	s.sink().Info(level, msg, kv...)
}

// Error writes through base with the kept pairs.
func (s *deferredSink) Error(err error, msg string, kv ...any) {
	s.sink().Error(err, msg, kv...)
}

// WithValues keeps kv after the pairs already kept.
func (s *deferredSink) WithValues(kv ...any) logr.LogSink {
	return &deferredSink{base: s.base, kv: append(slices.Clip(s.kv), kv...)}
}

// WithName names base; the kept pairs stay as they are.
func (s *deferredSink) WithName(name string) logr.LogSink {
	return &deferredSink{base: s.base.WithName(name), kv: s.kv}
}

// WithCallDepth adds depth to base's call depth, if base has one.
func (s *deferredSink) WithCallDepth(depth int) logr.LogSink {
	base := s.base
	if cd, ok := base.(logr.CallDepthLogSink); ok {
		base = cd.WithCallDepth(depth)
	}
	return &deferredSink{base: base, kv: s.kv}
}

// sink is base with the kept pairs, made once.
func (s *deferredSink) sink() logr.LogSink {
	s.once.Do(func() {
		s.bound = s.base
		if len(s.kv) > 0 {
			s.bound = s.base.WithValues(s.kv...)
		}
	})
	return s.bound
}
