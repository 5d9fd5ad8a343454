package main

import (
	"context"
	"io"

	"github.com/spf13/cobra"
)

// exitError ends the process with code without printing anything more:
// the command has said what there is to say.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

// newRootCmd builds the command tree for one run.
func newRootCmd(ctx context.Context, stdout, stderr io.Writer, d deps) *cobra.Command {
	root := &cobra.Command{
		Use:   "kubectl-scriptlock",
		Short: "Tools for the ScriptLock Customer operator",
		Long: `kubectl scriptlock: tools for the ScriptLock Customer operator.

  import   write a Customer manifest for every record of a ScriptLock account
  plan     show what applying manifests would make the operator do to ScriptLock, revocations first
  status   list the Customers that are not Ready and what to do (exit code 1 if any)
  sync     ask the operator for a pass now and wait for it
  approve-deletion  list the deletions the revocation brake holds; --yes lets them go
  version  print the plugin's version, the operator's in the cluster, and Kubernetes'`,
		Annotations: map[string]string{
			// Shown as "kubectl scriptlock" in help and completion.
			cobra.CommandDisplayNameAnnotation: "kubectl scriptlock",
		},
		// Errors are returned to main, which prints them once; a usage
		// dump after a wrong flag buries the message.
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetContext(ctx)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newImportCmd(stdout, stderr, d), newPlanCmd(stdout, stderr, d), newStatusCmd(stdout, stderr, d), newVersionCmd(stdout),
		newSyncCmd(stdout, stderr), newApproveCmd(stdout, stderr))
	return root
}

// run is the whole command, without the process: main only wires os.Args,
// the standard streams and signals into it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, d deps) error {
	root := newRootCmd(ctx, stdout, stderr, d)
	if args == nil {
		args = []string{} // nil would make cobra read os.Args
	}
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}
