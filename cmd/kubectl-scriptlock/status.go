package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
)

// Reasons status reports that are not Ready condition reasons of the
// operator: they describe a Customer the operator has not (yet) described.
const (
	// reasonPaused: annotation licensing.scriptlock.com/paused=true.
	reasonPaused = "Paused"
	// reasonPending: no Ready condition: the operator has not reached it.
	reasonPending = "Pending"
	// reasonOutdated: the conditions describe an older generation.
	reasonOutdated = "Outdated"
	// reasonUnknown: a Ready condition without a reason.
	reasonUnknown = "Unknown"
)

// advice is the one thing to do about each reason a Customer is not Ready
// for. It mirrors the README's troubleshooting table; keep them together.
var advice = map[string]string{
	v1alpha1.ReasonConflict:           "another record has this email: set spec.adoption: IfExists or spec.customerID to manage it, or use another email; if another Customer manages it (the message says), delete one of the two",
	v1alpha1.ReasonNotFound:           "spec.customerID names no record: fix the id (delete and recreate the Customer: the field is immutable)",
	v1alpha1.ReasonUnauthorized:       "ScriptLock refused the key: fix the credentials Secret; the operator retries within 5 minutes",
	v1alpha1.ReasonInvalidCredentials: "create the credentials Secret (key apiKey) in the Customer's namespace, or give the operator a default key; the retry comes within 5 minutes",
	v1alpha1.ReasonDeletionBlocked:    "ScriptLock refused the delete: resolve it in ScriptLock, or set spec.deletionPolicy: Orphan to let the object go without deleting",
	v1alpha1.ReasonDeletionHeld:       "the revocation brake holds this deletion (its account's deletion budget is spent): if the licenses are to be revoked, kubectl scriptlock approve-deletion; if not, set spec.deletionPolicy: Orphan",
	v1alpha1.ReasonAPIError:           "nothing: the operator backs off and retries (check scriptlock_requests_total); with Stalled=True ScriptLock refused the request itself: check the values",
	v1alpha1.ReasonRateLimited:        "nothing: the operator waits as ScriptLock asked",
	v1alpha1.ReasonAccountChanged:     "point the credentials back at the account that holds the record; if it was deleted there, delete the Customer and create it again",
	v1alpha1.ReasonStoredDifferently:  "change the spec to what ScriptLock stores in the named fields (for example, single spaces)",
	v1alpha1.ReasonInvalidID:          "status.customerID was edited by hand: restore it, or delete and recreate the Customer with spec.customerID",
	v1alpha1.ReasonCreating:           "nothing: the create's outcome is being confirmed; if it stays, check that the operator is running",
	v1alpha1.ReasonDeleting:           "nothing: the record is being deleted; if it stays, check that the operator is running and the Customer is not paused",
	v1alpha1.ReasonRemoteDeleted:      "nothing: the record was deleted in ScriptLock and the operator creates it again",
	v1alpha1.ReasonDiffers:            "managementPolicy Observe: review the differences in the message, make the spec (or the record) match, then set spec.managementPolicy: Manage",
	reasonPaused:                      "remove the annotation licensing.scriptlock.com/paused when the operator should act on it again",
	reasonPending:                     "wait for the operator; if it stays, check that the operator is running and its --selector matches this Customer",
	reasonOutdated:                    "wait for the operator to reconcile the new spec; if it stays, check that the operator is running",
}

// adviceFor returns what to do about reason.
func adviceFor(reason string) string {
	if a, ok := advice[reason]; ok {
		return a
	}
	return "see the README troubleshooting table and `kubectl describe customer` for its events"
}

// notReady says whether c is not Ready, and why: a paused Customer, one
// being deleted, one without a Ready condition, one whose conditions
// describe an older generation, and one whose Ready condition is not True.
func notReady(c *v1alpha1.Customer) (reason, message string, bad bool) {
	ready := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady)
	switch {
	case c.Annotations[v1alpha1.PausedAnnotation] == "true":
		msg := "the operator makes no ScriptLock call and no change until the annotation is removed"
		if ready != nil {
			msg += fmt.Sprintf(" (last Ready=%s %s)", ready.Status, ready.Reason)
		}
		return reasonPaused, msg, true
	case !c.DeletionTimestamp.IsZero():
		if ready != nil && (ready.Reason == v1alpha1.ReasonDeletionBlocked || ready.Reason == v1alpha1.ReasonDeletionHeld) {
			return ready.Reason, ready.Message, true
		}
		msg := "the Customer is being deleted"
		if ready != nil && ready.Reason == v1alpha1.ReasonDeleting && ready.Message != "" {
			msg = ready.Message
		}
		return v1alpha1.ReasonDeleting, msg, true
	case ready == nil:
		return reasonPending, "no Ready condition: the operator has not reached this Customer yet", true
	case c.Status.ObservedGeneration < c.Generation:
		return reasonOutdated, fmt.Sprintf("the status describes generation %d, the spec is generation %d", c.Status.ObservedGeneration, c.Generation), true
	case ready.Status != "True":
		reason := ready.Reason
		if reason == "" {
			reason = reasonUnknown
		}
		return reason, ready.Message, true
	}
	return "", "", false
}

// statusOptions is everything the status flags say.
type statusOptions struct {
	allNamespaces bool
	output        string
	kube          *genericclioptions.ConfigFlags
}

// statusReport is what `status -o json|yaml` prints: the Customers that
// are not Ready, with the same fields as the table.
type statusReport struct {
	// Scope is "all namespaces" or "namespace NAME".
	Scope string `json:"scope"`
	// Total counts the Customers listed, Ready or not.
	Total    int           `json:"total"`
	NotReady []statusEntry `json:"notReady"`
}

type statusEntry struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Reason    string `json:"reason"`
	Message   string `json:"message"`
	Do        string `json:"do"`
	// Created is the Customer's creationTimestamp (the table's AGE).
	Created metav1.Time `json:"created"`
}

// newStatusCmd is `kubectl scriptlock status`.
func newStatusCmd(stdout, stderr io.Writer, d deps) *cobra.Command {
	o := &statusOptions{kube: genericclioptions.NewConfigFlags(false)}
	cmd := &cobra.Command{
		Use:   "status [-A | -n NAMESPACE]",
		Short: "List the Customers that are not Ready and what to do; exit code 1 if there are any",
		Long: `List the Customers that are not Ready: without a Ready condition, with
Ready not True, with conditions of an older generation, paused, or being
deleted; with the reason, the message, the age and the one thing to do about
each (the README troubleshooting table). The exit code is 1 when any
Customer is not Ready and 0 when all are, so that pipelines can gate on it.
With -o json or -o yaml it prints the same as one document (the messages
whole), with the same exit code.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.output != "" && o.output != "json" && o.output != "yaml" {
				return fmt.Errorf("--output must be json or yaml, not %q", o.output)
			}
			return runStatus(cmd.Context(), o, stdout, stderr, d, time.Now())
		},
	}
	cmd.Flags().BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "List the Customers of every namespace.")
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "Print json or yaml instead of the table.")
	o.kube.AddFlags(cmd.Flags())
	return cmd
}

// runStatus lists the Customers and prints those that are not Ready.
func runStatus(ctx context.Context, o *statusOptions, stdout, stderr io.Writer, d deps, now time.Time) error {
	var opts []client.ListOption
	where := "all namespaces"
	if !o.allNamespaces {
		ns, _, err := o.kube.ToRawKubeConfigLoader().Namespace()
		if err != nil {
			return fmt.Errorf("loading the kubeconfig: %w", err)
		}
		opts = append(opts, client.InNamespace(ns))
		where = "namespace " + ns
	}
	c, err := d.newReader(o.kube)
	if err != nil {
		return err
	}
	list := &v1alpha1.CustomerList{}
	if err := c.List(ctx, list, opts...); err != nil {
		if meta.IsNoMatchError(err) {
			return fmt.Errorf("listing Customers: the Customer CRD is not installed in this cluster: %w", err)
		}
		return fmt.Errorf("listing Customers in %s: %w", where, err)
	}
	items := list.Items
	slices.SortFunc(items, func(a, b v1alpha1.Customer) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})

	report := statusReport{Scope: where, Total: len(items), NotReady: []statusEntry{}}
	for i := range items {
		c := &items[i]
		if reason, msg, bad := notReady(c); bad {
			report.NotReady = append(report.NotReady, statusEntry{
				Namespace: c.Namespace, Name: c.Name, Reason: reason, Message: msg, Do: adviceFor(reason), Created: c.CreationTimestamp,
			})
		}
	}
	if o.output == "" {
		err = printStatusTable(stdout, report, now)
	} else {
		err = printDocument(stdout, o.output, report)
	}
	if err != nil {
		return err
	}
	bad := len(report.NotReady)
	if bad == 0 {
		return nil
	}
	msg := fmt.Sprintf("%d of %d Customers in %s are not Ready", bad, len(items), where)
	fmt.Fprintln(stderr, msg)
	return exitError{code: 1, msg: msg}
}

// printStatusTable prints the report as the status table, or one line
// saying that every Customer is Ready.
func printStatusTable(w io.Writer, r statusReport, now time.Time) error {
	if len(r.NotReady) == 0 {
		_, err := fmt.Fprintf(w, "All %d Customers in %s are Ready.\n", r.Total, r.Scope)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tREASON\tAGE\tMESSAGE\tDO")
	for _, e := range r.NotReady {
		age := "<unknown>"
		if !e.Created.IsZero() {
			age = duration.HumanDuration(now.Sub(e.Created.Time))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Namespace, e.Name, oneLine(e.Reason, 32), age, oneLine(e.Message, 80), e.Do)
	}
	return tw.Flush()
}

// printDocument prints v as indented JSON or as YAML.
func printDocument(w io.Writer, format string, v any) error {
	var b []byte
	var err error
	if format == "yaml" {
		b, err = yaml.Marshal(v)
	} else {
		b, err = json.MarshalIndent(v, "", "  ")
		b = append(b, '\n')
	}
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// oneLine makes s fit one table cell: control characters and runs of
// whitespace become one space, and it is cut to max runes with "...".
func oneLine(s string, max int) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	if s == "" {
		return "-"
	}
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max-3]) + "..."
}
