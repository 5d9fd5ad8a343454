package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
)

// approveOptions is everything the approve-deletion flags say.
type approveOptions struct {
	allNamespaces bool
	all           bool
	namespaceWide bool
	yes           bool
	kube          *genericclioptions.ConfigFlags
}

// newApproveCmd is `kubectl scriptlock approve-deletion`.
func newApproveCmd(stdout, stderr io.Writer) *cobra.Command {
	o := &approveOptions{kube: genericclioptions.NewConfigFlags(false)}
	cmd := &cobra.Command{
		Use:   "approve-deletion NAME... | --all | -A [--namespace-wide] [--yes]",
		Short: "List the deletions the revocation brake holds, and with --yes let them revoke the licenses",
		Long: `List the Customers whose deletion the revocation brake holds (being
deleted, Ready=False with reason DeletionHeld): each one's record and account,
whose licenses its DELETE will revoke. Nothing is changed without --yes.

With --yes, each listed Customer is annotated
licensing.scriptlock.com/approve-deletion=true, and the operator deletes its
record at its next look (within its backoff, at most 5 minutes). With
--namespace-wide, the namespaces of the listed Customers are annotated
instead, which approves every held deletion in them, also those held later:
remove the annotation from the namespace when the teardown is done.

If a deletion is held by mistake (a GitOps prune, a namespace deleted by
accident), do not approve it: set spec.deletionPolicy: Orphan on it, which
lets the object go and keeps the record, then recreate the Customer with
spec.customerID to manage the record again.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) > 0 && (o.all || o.allNamespaces):
				return errors.New("give NAMEs, or --all, or -A, not several")
			case len(args) == 0 && !o.all && !o.allNamespaces:
				return errors.New("give the NAMEs of held Customers, or --all (this namespace), or -A (every namespace)")
			}
			return runApprove(cmd.Context(), o, args, stdout, stderr)
		},
	}
	cmd.Flags().BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "The held deletions of every namespace.")
	cmd.Flags().BoolVar(&o.all, "all", false, "The held deletions of the namespace.")
	cmd.Flags().BoolVar(&o.namespaceWide, "namespace-wide", false, "Annotate the namespaces of the held Customers instead of each Customer.")
	cmd.Flags().BoolVar(&o.yes, "yes", false, "Approve: without it, only list what would be revoked.")
	o.kube.AddFlags(cmd.Flags())
	return cmd
}

// held says whether c is being deleted and the brake holds it.
func held(c *v1alpha1.Customer) bool {
	cond := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady)
	return !c.DeletionTimestamp.IsZero() && cond != nil && cond.Reason == v1alpha1.ReasonDeletionHeld
}

// runApprove lists the held deletions selected, and approves them with
// --yes.
func runApprove(ctx context.Context, o *approveOptions, names []string, stdout, stderr io.Writer) error {
	c, err := clusterClient(o.kube)
	if err != nil {
		return err
	}
	items, err := selectCustomers(ctx, c, o.kube, names, o.allNamespaces)
	if err != nil {
		return err
	}
	var hold []v1alpha1.Customer
	for _, cu := range items {
		if held(&cu) {
			hold = append(hold, cu)
		} else if len(names) > 0 {
			fmt.Fprintf(stderr, "Customer %s/%s: its deletion is not held by the brake; skipped\n", cu.Namespace, cu.Name)
		}
	}
	if len(hold) == 0 {
		fmt.Fprintln(stdout, "No deletion is held.")
		return nil
	}
	verb := "would revoke"
	if o.yes {
		verb = "revokes"
	}
	fmt.Fprintf(stdout, "Approving these deletions %s every license of each ScriptLock customer:\n", verb)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tCUSTOMER ID\tACCOUNT\tEMAIL\tDELETED")
	for _, cu := range hold {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", cu.Namespace, cu.Name, orDash(cu.Status.CustomerID), orDash(cu.Status.Account),
			cu.Spec.Email, cu.DeletionTimestamp.UTC().Format("2006-01-02T15:04:05Z"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !o.yes {
		fmt.Fprintf(stdout, "%d held deletions. Nothing was changed: run again with --yes to approve them.\n", len(hold))
		return nil
	}
	if o.namespaceWide {
		var done []string
		for _, cu := range hold {
			if slices.Contains(done, cu.Namespace) {
				continue
			}
			ns := &corev1.Namespace{}
			if err := c.Get(ctx, client.ObjectKey{Name: cu.Namespace}, ns); err != nil {
				return fmt.Errorf("getting namespace %s: %w", cu.Namespace, err)
			}
			if err := annotate(ctx, c, ns, v1alpha1.ApproveDeletionAnnotation, "true"); err != nil {
				return fmt.Errorf("approving the deletions of namespace %s: %w", cu.Namespace, err)
			}
			done = append(done, cu.Namespace)
			fmt.Fprintf(stdout, "namespace/%s annotated %s=true: every held deletion in it goes ahead; remove the annotation when done\n",
				cu.Namespace, v1alpha1.ApproveDeletionAnnotation)
		}
		return nil
	}
	for i := range hold {
		if err := annotate(ctx, c, &hold[i], v1alpha1.ApproveDeletionAnnotation, "true"); err != nil {
			return fmt.Errorf("approving the deletion of Customer %s/%s: %w", hold[i].Namespace, hold[i].Name, err)
		}
	}
	fmt.Fprintf(stdout, "%d deletions approved; the operator deletes their records at its next look.\n", len(hold))
	return nil
}
