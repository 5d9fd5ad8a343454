package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
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
	// uids, with --yes: approve only the held Customers with these UIDs
	// (those a listing showed). Required with --yes and --all or -A.
	uids []string
	kube *genericclioptions.ConfigFlags
}

// newApproveCmd is `kubectl scriptlock approve-deletion`.
func newApproveCmd(stdout, stderr io.Writer) *cobra.Command {
	o := &approveOptions{kube: genericclioptions.NewConfigFlags(false)}
	cmd := &cobra.Command{
		Use:   "approve-deletion NAME... | --all | -A [--namespace-wide] [--yes [--uids UID,...]]",
		Short: "List the deletions the revocation brake holds, and with --yes let them revoke the licenses",
		Long: `List the Customers whose deletion the revocation brake holds (being
deleted, Ready=False with reason DeletionHeld): each one's UID, record and
account, whose licenses its DELETE will revoke. Nothing is changed without
--yes; the listing ends with the command that approves exactly the
Customers it showed (--yes --uids=...).

With --yes, each Customer approved is annotated
licensing.scriptlock.com/approve-deletion=<its deletionTimestamp> (an
approval names the deletion it approves: "true", or a value written before
the deletion, approves nothing), and the operator deletes its record at its
next look (within its backoff, at most 5 minutes). With --all or -A, --yes
approves only the Customers of --uids (those the listing you reviewed
showed): a deletion held since is listed again, not approved. With NAMEs,
--uids is optional.

With --namespace-wide, the namespaces of those Customers are annotated
instead, with the latest deletionTimestamp among them: that approves every
deletion in the namespace begun at or before it (those not listed too),
never one begun later. The operator must be able to read namespaces (a
cluster-wide install): installed namespace-scoped, it cannot, never sees the
approval, and reports NamespaceApprovalUnreadable on the held Customers;
approve each Customer there.

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
			case len(o.uids) > 0 && !o.yes:
				return errors.New("--uids chooses what --yes approves: give --yes too, or leave --uids out to list")
			case o.yes && len(args) == 0 && len(o.uids) == 0:
				return errors.New("with --all or -A, --yes approves only the Customers you reviewed: run without --yes to list them, " +
					"then run the command the listing ends with (--yes --uids=...)")
			}
			return runApprove(cmd.Context(), o, args, stdout, stderr)
		},
	}
	cmd.Flags().BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "The held deletions of every namespace.")
	cmd.Flags().BoolVar(&o.all, "all", false, "The held deletions of the namespace.")
	cmd.Flags().BoolVar(&o.namespaceWide, "namespace-wide", false,
		"Annotate the namespaces of the held Customers instead of each Customer: approves every deletion there begun at or before the latest listed one. "+
			"Needs an operator that can read namespaces (not a namespace-scoped install: approve each Customer there).")
	cmd.Flags().BoolVar(&o.yes, "yes", false, "Approve: without it, only list what would be revoked.")
	cmd.Flags().StringSliceVar(&o.uids, "uids", nil, "With --yes: approve only the held Customers with these UIDs (as the listing shows them); required with --all or -A.")
	o.kube.AddFlags(cmd.Flags())
	return cmd
}

// held says whether c is being deleted and the brake holds it.
func held(c *v1alpha1.Customer) bool {
	cond := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady)
	return !c.DeletionTimestamp.IsZero() && cond != nil && cond.Reason == v1alpha1.ReasonDeletionHeld
}

// approvalOf is the value of the approval annotation that approves c's
// deletion: its deletionTimestamp, RFC 3339.
func approvalOf(c *v1alpha1.Customer) string {
	return c.DeletionTimestamp.UTC().Format(time.RFC3339)
}

// runApprove lists the held deletions selected, and approves them with
// --yes (only those of --uids, if given).
func runApprove(ctx context.Context, o *approveOptions, names []string, stdout, stderr io.Writer) error {
	c, err := clusterClient(o.kube)
	if err != nil {
		return err
	}
	items, err := selectCustomers(ctx, c, o.kube, names, o.allNamespaces)
	if err != nil {
		return err
	}
	want := map[types.UID]bool{}
	for _, u := range o.uids {
		want[types.UID(strings.TrimSpace(u))] = true
	}
	var hold []v1alpha1.Customer
	for _, cu := range items {
		switch {
		case !held(&cu):
			if len(names) > 0 || want[cu.UID] {
				fmt.Fprintf(stderr, "Customer %s/%s: its deletion is not held by the brake; skipped\n", cu.Namespace, cu.Name)
			}
			delete(want, cu.UID)
		case len(o.uids) > 0 && !want[cu.UID]:
			fmt.Fprintf(stderr, "Customer %s/%s (UID %s): held, but not in --uids (not reviewed); skipped\n", cu.Namespace, cu.Name, cu.UID)
		default:
			delete(want, cu.UID)
			hold = append(hold, cu)
		}
	}
	for _, u := range slices.Sorted(maps.Keys(want)) {
		fmt.Fprintf(stderr, "UID %s of --uids: no such held Customer here (gone, or replaced by another object); skipped\n", u)
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
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tUID\tCUSTOMER ID\tACCOUNT\tEMAIL\tDELETED")
	for _, cu := range hold {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cu.Namespace, cu.Name, cu.UID, orDash(cu.Status.CustomerID), orDash(cu.Status.Account),
			cu.Spec.Email, approvalOf(&cu))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !o.yes {
		uids := make([]string, 0, len(hold))
		for _, cu := range hold {
			uids = append(uids, string(cu.UID))
		}
		fmt.Fprintf(stdout, "%d held deletions. Nothing was changed. To approve exactly these:\n  kubectl scriptlock %s --yes --uids=%s\n",
			len(hold), strings.Join(approveArgs(o, names), " "), strings.Join(uids, ","))
		return nil
	}
	if o.namespaceWide {
		return approveNamespaces(ctx, c, hold, stdout)
	}
	for i := range hold {
		if err := annotate(ctx, c, &hold[i], v1alpha1.ApproveDeletionAnnotation, approvalOf(&hold[i])); err != nil {
			return fmt.Errorf("approving the deletion of Customer %s/%s: %w", hold[i].Namespace, hold[i].Name, err)
		}
	}
	fmt.Fprintf(stdout, "%d deletions approved; the operator deletes their records at its next look.\n", len(hold))
	return nil
}

// approveNamespaces annotates the namespace of each Customer of hold with
// the latest deletionTimestamp of its Customers in hold (or keeps a later
// approval already there).
func approveNamespaces(ctx context.Context, c client.Client, hold []v1alpha1.Customer, stdout io.Writer) error {
	until := map[string]time.Time{}
	var order []string
	for _, cu := range hold {
		t, ok := until[cu.Namespace]
		if !ok {
			order = append(order, cu.Namespace)
		}
		if !ok || cu.DeletionTimestamp.After(t) {
			until[cu.Namespace] = cu.DeletionTimestamp.Time
		}
	}
	for _, name := range order {
		ns := &corev1.Namespace{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
			return fmt.Errorf("getting namespace %s: %w", name, err)
		}
		t := until[name]
		if was, err := time.Parse(time.RFC3339, ns.Annotations[v1alpha1.ApproveDeletionAnnotation]); err == nil && was.After(t) {
			t = was
		}
		v := t.UTC().Format(time.RFC3339)
		if err := annotate(ctx, c, ns, v1alpha1.ApproveDeletionAnnotation, v); err != nil {
			return fmt.Errorf("approving the deletions of namespace %s: %w", name, err)
		}
		fmt.Fprintf(stdout, "namespace/%s annotated %s=%s: every deletion in it begun at or before %s goes ahead, never a later one. "+
			"An operator installed namespace-scoped cannot read namespaces and does not see this (its held Customers report NamespaceApprovalUnreadable): approve each Customer there.\n",
			name, v1alpha1.ApproveDeletionAnnotation, v, v)
	}
	return nil
}

// approveArgs are the arguments of this run that chose the Customers, for
// the command that approves them.
func approveArgs(o *approveOptions, names []string) []string {
	args := []string{"approve-deletion"}
	switch {
	case o.allNamespaces:
		args = append(args, "-A")
	case o.all:
		args = append(args, "--all")
	default:
		args = append(args, names...)
	}
	if !o.allNamespaces && o.kube.Namespace != nil && *o.kube.Namespace != "" {
		args = append(args, "-n", *o.kube.Namespace)
	}
	if o.namespaceWide {
		args = append(args, "--namespace-wide")
	}
	return args
}
