// Command kubectl-scriptlock is a kubectl plugin for the ScriptLock
// Customer operator. Its import command writes a Customer manifest for
// every record of a ScriptLock account, for onboarding existing customers
// into GitOps (docs/import.md):
//
//	kubectl scriptlock import --api-key-file key.txt --output-dir customers/
//
// Its version command prints the version stamped at build time, the same
// as the manager's --version (both print internal/scriptlock.Version).
//
// This file is wiring only; the command is in import.go, the conversion of
// records into Customers in convert.go.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

func main() {
	// The plugin reports on stderr itself; controller-runtime's logger
	// would otherwise complain that it was never set.
	ctrllog.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, defaultDeps())
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
