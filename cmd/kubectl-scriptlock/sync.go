package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
)

// syncOptions is everything the sync flags say.
type syncOptions struct {
	allNamespaces bool
	all           bool
	timeout       time.Duration
	kube          *genericclioptions.ConfigFlags
}

// newSyncCmd is `kubectl scriptlock sync`.
func newSyncCmd(stdout, stderr io.Writer) *cobra.Command {
	o := &syncOptions{kube: genericclioptions.NewConfigFlags(false)}
	cmd := &cobra.Command{
		Use:   "sync NAME... | --all | -A",
		Short: "Ask the operator for a pass now and wait for its result; exit code 1 if any Customer is not Ready after it",
		Long: `Ask the operator to reconcile Customers now, whatever the resync period,
and wait until it has: sets the annotation
licensing.scriptlock.com/reconcile-requested-at to the current time on each
Customer, then waits until status.lastHandledReconcileAt shows that value
(the operator echoes it once a pass has checked ScriptLock for the request:
read the record, or failed with a reason shown in Ready; even when nothing
changed; a pass held back by the operator's own rate limit does not count). The requested pass reads each record from ScriptLock itself, so
an edit made in ScriptLock is found and put back now. Prints the Ready
status of each; the exit code is 1 when any is not Ready after its pass or
the operator did not handle the request within --timeout (paused Customers
are never handled).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) > 0 && (o.all || o.allNamespaces):
				return errors.New("give NAMEs, or --all, or -A, not several")
			case len(args) == 0 && !o.all && !o.allNamespaces:
				return errors.New("give the NAMEs of Customers to sync, or --all (this namespace), or -A (every namespace)")
			}
			return runSync(cmd.Context(), o, args, stdout, stderr)
		},
	}
	cmd.Flags().BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "Sync the Customers of every namespace.")
	cmd.Flags().BoolVar(&o.all, "all", false, "Sync every Customer of the namespace.")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 2*time.Minute, "How long to wait for the operator.")
	o.kube.AddFlags(cmd.Flags())
	return cmd
}

// clusterClient returns a controller-runtime client that knows Customers
// and core objects, for the commands that write.
func clusterClient(getter genericclioptions.RESTClientGetter) (client.Client, error) {
	cfg, err := getter.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("connecting to the cluster: %w", err)
	}
	return c, nil
}

// selectCustomers returns the Customers named (in the namespace of the
// kubeconfig flags), or all of the namespace, or of every namespace,
// sorted by namespace/name.
func selectCustomers(ctx context.Context, c client.Client, kube *genericclioptions.ConfigFlags, names []string, allNamespaces bool) ([]v1alpha1.Customer, error) {
	var ns string
	if !allNamespaces {
		var err error
		if ns, _, err = kube.ToRawKubeConfigLoader().Namespace(); err != nil {
			return nil, fmt.Errorf("loading the kubeconfig: %w", err)
		}
	}
	var out []v1alpha1.Customer
	if len(names) > 0 {
		for _, n := range names {
			cu := v1alpha1.Customer{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: n}, &cu); err != nil {
				return nil, fmt.Errorf("getting Customer %s/%s: %w", ns, n, err)
			}
			out = append(out, cu)
		}
	} else {
		list := &v1alpha1.CustomerList{}
		var opts []client.ListOption
		if !allNamespaces {
			opts = append(opts, client.InNamespace(ns))
		}
		if err := c.List(ctx, list, opts...); err != nil {
			if meta.IsNoMatchError(err) {
				return nil, fmt.Errorf("listing Customers: the Customer CRD is not installed in this cluster: %w", err)
			}
			return nil, fmt.Errorf("listing Customers: %w", err)
		}
		out = list.Items
	}
	slices.SortFunc(out, func(a, b v1alpha1.Customer) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return out, nil
}

// annotate sets key=value on obj with a merge patch (no resourceVersion:
// a concurrent change of anything else is kept).
func annotate(ctx context.Context, c client.Client, obj client.Object, key, value string) error {
	base := obj.DeepCopyObject().(client.Object)
	a := obj.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[key] = value
	obj.SetAnnotations(a)
	return c.Patch(ctx, obj, client.MergeFrom(base))
}

// runSync requests a pass of each Customer selected, waits for each to be
// handled, and prints the outcome.
func runSync(ctx context.Context, o *syncOptions, names []string, stdout, stderr io.Writer) error {
	c, err := clusterClient(o.kube)
	if err != nil {
		return err
	}
	items, err := selectCustomers(ctx, c, o.kube, names, o.allNamespaces)
	if err != nil {
		return err
	}
	if len(items) == 0 {
		fmt.Fprintln(stdout, "No Customers to sync.")
		return nil
	}
	value := time.Now().UTC().Format(time.RFC3339Nano)
	for i := range items {
		if err := annotate(ctx, c, &items[i], v1alpha1.ReconcileRequestAnnotation, value); err != nil {
			return fmt.Errorf("requesting a pass of Customer %s/%s: %w", items[i].Namespace, items[i].Name, err)
		}
	}
	deadline := time.Now().Add(o.timeout)
	pending := map[int]bool{}
	for i := range items {
		// A paused Customer handles no request: nothing to wait for.
		if items[i].Annotations[v1alpha1.PausedAnnotation] != "true" {
			pending[i] = true
		}
	}
	for len(pending) > 0 && time.Now().Before(deadline) {
		if err := refresh(ctx, c, o, names, items, pending, value); err != nil {
			return err
		}
		if len(pending) > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	bad := 0
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tSYNCED\tREADY\tREASON\tMESSAGE")
	for i, cu := range items {
		synced, handled := "yes", true
		switch {
		case cu.Annotations[v1alpha1.PausedAnnotation] == "true":
			synced, handled = "no: paused", false
		case pending[i]:
			synced, handled = "not handled within "+o.timeout.String(), false
		}
		ready, reason, msg := "Unknown", "-", ""
		if cond := meta.FindStatusCondition(cu.Status.Conditions, v1alpha1.ConditionReady); cond != nil {
			ready, reason, msg = string(cond.Status), cond.Reason, cond.Message
		}
		if !handled || ready != "True" {
			bad++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", cu.Namespace, cu.Name, synced, ready, reason, oneLine(msg, 80))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if bad == 0 {
		return nil
	}
	msg := fmt.Sprintf("%d of %d Customers are not Ready after the requested pass", bad, len(items))
	fmt.Fprintln(stderr, msg)
	return exitError{code: 1, msg: msg}
}

// refresh reads the Customers still pending again (one Get each when they
// were named, else one List of the scope) and drops from pending those
// whose request value was handled, or that were deleted meanwhile.
func refresh(ctx context.Context, c client.Client, o *syncOptions, names []string, items []v1alpha1.Customer, pending map[int]bool, value string) error {
	fresh := map[string]*v1alpha1.Customer{}
	if len(names) > 0 {
		for i := range pending {
			cu := &v1alpha1.Customer{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(&items[i]), cu); err != nil {
				if client.IgnoreNotFound(err) != nil {
					return err
				}
				continue
			}
			fresh[cu.Namespace+"/"+cu.Name] = cu
		}
	} else {
		list, err := selectCustomers(ctx, c, o.kube, nil, o.allNamespaces)
		if err != nil {
			return err
		}
		for i := range list {
			fresh[list[i].Namespace+"/"+list[i].Name] = &list[i]
		}
	}
	for i := range pending {
		cu, ok := fresh[items[i].Namespace+"/"+items[i].Name]
		if !ok {
			// Deleted meanwhile: nothing more to wait for.
			delete(pending, i)
			continue
		}
		items[i] = *cu
		if cu.Status.LastHandledReconcileAt == value {
			delete(pending, i)
		}
	}
	return nil
}
