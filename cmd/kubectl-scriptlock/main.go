// Command kubectl-scriptlock is a kubectl plugin for the ScriptLock
// Customer operator (docs/plugin.md). Its commands:
//
//	kubectl scriptlock import --api-key-file key.txt --output-dir customers/
//	kubectl scriptlock plan -k overlays/prod --prune [-o json] [--fail-on revoke]
//	kubectl scriptlock status [-A | -n NAMESPACE] [-o json|yaml]
//	kubectl scriptlock sync NAME... | --all | -A [--timeout 2m]
//	kubectl scriptlock approve-deletion NAME... | --all | -A [--namespace-wide] [--yes]
//	kubectl scriptlock version [--client] [-o json|yaml]
//	kubectl scriptlock completion bash|zsh|fish|powershell
//
// import writes a Customer manifest for every record of a ScriptLock
// account, for onboarding existing customers into GitOps (docs/import.md);
// plan shows what applying manifests would make the operator do to
// ScriptLock, and writes nothing (docs/plan.md);
// status lists the Customers that are not Ready with what to do about each,
// and exits 1 when there is any; version prints the version stamped at
// build time, the same as the manager's --version (both print
// internal/version.Version), and the versions of the operator
// Deployments and of Kubernetes in the cluster.
//
// sync asks the operator for a pass now and waits for it;
// approve-deletion lists the deletions the revocation brake holds and, with
// --yes, approves them.
//
// This file is wiring only; the commands are in root.go, import.go,
// plan.go, status.go, sync.go, approve.go and version.go, the conversion of records into Customers in
// convert.go.
package main

import (
	"context"
	"errors"
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
	var exit exitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		// Already reported (status: Customers that are not Ready).
		os.Exit(exit.code)
	default:
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
