package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/controllers"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// planOptions is everything the plan flags and environment say.
type planOptions struct {
	filenames         []string
	recursive         bool
	kustomize         string
	prune             bool
	selector          string
	output            string
	hideValues        bool
	failOn            []string
	scriptlockURL     string
	apiKeyFile        string
	caFile            string
	allowInsecureHTTP bool
	allowedHosts      string
	deletionBudget    int
	budgetWindow      time.Duration
	budgetNamespace   string
	kube              *genericclioptions.ConfigFlags
}

// defaultBrakeNamespace is the plan's --deletion-budget-namespace: the
// namespace config/default and the Helm chart's examples install the
// operator in (the manager's default is its own Pod's namespace).
const defaultBrakeNamespace = "scriptlock-system"

// planFailOn are the values of --fail-on.
var planFailOn = []string{"revoke", "conflict", "error", "any"}

// planExitCode is the exit code when a --fail-on gate matches; 1 is a
// failure of the command itself.
const planExitCode = 2

// newPlanCmd is `kubectl scriptlock plan`.
func newPlanCmd(stdout, stderr io.Writer, d deps) *cobra.Command {
	o := &planOptions{kube: genericclioptions.NewConfigFlags(false)}
	cmd := &cobra.Command{
		Use:   "plan [-f FILE|DIR|- | -k DIR] [--prune] [-o json] [--fail-on revoke,conflict,error,any]",
		Short: "Show what applying manifests would make the operator do to ScriptLock, revocations first",
		Long: `Show what applying Customer manifests to the cluster would make the operator do
to ScriptLock: create, update (the fields, and their values unless
--hide-values), adopt, conflict (and why), observe (managementPolicy: Observe
differences), delete (and whether it revokes the customer's licenses),
orphan, none; error for an account that cannot be read or a manifest the API
server would refuse.

It reads the cluster (every Customer, and the credentials Secrets as the
operator does) and ScriptLock (one listing per account, with the credentials
the operator would use: the Secrets, and the default account from
SCRIPTLOCK_URL / --scriptlock-url and SCRIPTLOCK_API_KEY /
--scriptlock-api-key-file, as the manager takes them). It decides with the
operator's own code, and writes nothing: not to the cluster, not to
ScriptLock (its ScriptLock client cannot send anything but GET).

With --prune, the Customers of the namespaces of the manifests (and of
--namespace, if given) that are not in the manifests are taken as deleted,
as a GitOps sync with pruning would delete them; -l narrows that to the
Customers with those labels.

The revocation brake is planned as the manager runs it: give the manager's
--deletion-budget, --deletion-budget-window and --deletion-budget-namespace
(same defaults; the namespace defaults to scriptlock-system). The plan reads
the brake's Leases there and the approve-deletion annotation of the
Customers and their namespaces; a delete past the account's budget is shown
held (reason DeletionHeld, "held" in the JSON): no DELETE is sent until a
person approves it.

Exit code: 0, or 2 when a --fail-on gate matches (revoke: a license would be
revoked, or may be (a Customer being deleted whose credentials Secret is
gone: a running operator still holding the account's client DELETEs), or a
revoking delete would be held by the revocation brake, waiting for a person; conflict: a Customer would end in a conflict; error: a Customer
cannot be planned; any: anything but none). A Customer that cannot be
planned (error) fails every gate: it cannot be shown not to match. 1 is a
failure of the command itself.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			if o.scriptlockURL == "" {
				o.scriptlockURL = envOr(d.getenv, "SCRIPTLOCK_URL", scriptlock.DefaultBaseURL)
			}
			stdin := cmd.InOrStdin()
			if len(o.filenames) == 0 && o.kustomize == "" {
				// A pipe (kustomize build … | kubectl scriptlock plan);
				// a terminal is a forgotten -f, not a manifest to type.
				if f, ok := stdin.(*os.File); ok {
					if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
						return errors.New("give the manifests with -f FILE|DIR|-, -k DIR, or on stdin")
					}
				}
				o.filenames = []string{"-"}
			}
			return runPlan(cmd.Context(), o, stdin, stdout, stderr, d, time.Now())
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.StringSliceVarP(&o.filenames, "filename", "f", nil, "Manifests: a file, a directory of .yaml/.yml/.json files, or - for stdin (repeatable). Without -f and -k the manifests are read from stdin.")
	fs.BoolVarP(&o.recursive, "recursive", "R", false, "Read the directories of -f recursively.")
	fs.StringVarP(&o.kustomize, "kustomize", "k", "", "Build this kustomization directory (as kubectl apply -k does) and plan its Customers.")
	fs.BoolVar(&o.prune, "prune", false, "Take the Customers of the selected namespaces that are not in the manifests as deleted.")
	fs.StringVarP(&o.selector, "selector", "l", "", "With --prune: only Customers with these labels are pruned.")
	fs.StringVarP(&o.output, "output", "o", "", "json: print the plan as one JSON document instead of the table.")
	fs.BoolVar(&o.hideValues, "hide-values", false, "Show the names of the fields a write changes, never their values (personal data), in the table, the JSON and the messages.")
	fs.StringSliceVar(&o.failOn, "fail-on", nil, "Exit 2 when the plan has: revoke, conflict, error, any (comma-separated or repeated).")
	// No default in the flag: help text would show SCRIPTLOCK_URL's value,
	// and a URL can hold a key. It is read when the command runs.
	fs.StringVar(&o.scriptlockURL, "scriptlock-url", "", "Base URL of the default ScriptLock account (default: env SCRIPTLOCK_URL, else "+scriptlock.DefaultBaseURL+").")
	fs.StringVar(&o.apiKeyFile, "scriptlock-api-key-file", "", "File holding the API key of the default ScriptLock account; else the env SCRIPTLOCK_API_KEY holds the key itself. Without either there is no default account, as for the manager.")
	fs.StringVar(&o.caFile, "scriptlock-ca-file", d.getenv("SCRIPTLOCK_CA_FILE"), "PEM bundle of CAs to trust for ScriptLock instead of the system roots (env SCRIPTLOCK_CA_FILE).")
	fs.BoolVar(&o.allowInsecureHTTP, "allow-insecure-http", false, "Allow a plain http:// ScriptLock URL on a non-loopback host.")
	fs.StringVar(&o.allowedHosts, "allowed-scriptlock-hosts", "", "The manager's --allowed-scriptlock-hosts: comma-separated hosts (host or host:port) a credentials Secret's url may name; empty allows any host. The host of --scriptlock-url is always allowed.")
	fs.IntVar(&o.deletionBudget, "deletion-budget", controllers.DefaultDeletionBudget, "The manager's --deletion-budget: DELETEs per account per --deletion-budget-window before the revocation brake holds a deletion (shown held, reason DeletionHeld). 0: the brake is off.")
	fs.DurationVar(&o.budgetWindow, "deletion-budget-window", controllers.DefaultDeletionBudgetWindow, "The manager's --deletion-budget-window.")
	fs.StringVar(&o.budgetNamespace, "deletion-budget-namespace", defaultBrakeNamespace, "The manager's --deletion-budget-namespace: the namespace of the brake's Leases (the operator's namespace).")
	o.kube.AddFlags(fs)
	return cmd
}

// validate checks the flags that have a fixed set of values.
func (o *planOptions) validate() error {
	if o.output != "" && o.output != "json" {
		return fmt.Errorf("--output must be json, not %q", o.output)
	}
	for _, f := range o.failOn {
		if !slices.Contains(planFailOn, f) {
			return fmt.Errorf("--fail-on must be one of %s, not %q", strings.Join(planFailOn, ", "), f)
		}
	}
	if o.selector != "" {
		if _, err := labels.Parse(o.selector); err != nil {
			return fmt.Errorf("--selector: %w", err)
		}
	}
	if o.deletionBudget < 0 || o.deletionBudget > 0 && (o.budgetWindow <= 0 || o.budgetNamespace == "") {
		return errors.New("--deletion-budget must be 0 (off) or more, with a positive --deletion-budget-window and a --deletion-budget-namespace")
	}
	return nil
}

// planReport is what `plan -o json` prints.
type planReport struct {
	Items   []controllers.PlanItem `json:"items"`
	Summary planSummary            `json:"summary"`
}

// planSummary counts the items by action, the Customers whose licenses a
// delete revokes, and the deletes the revocation brake holds (counted in
// Delete, not in RevokesLicenses); Text is the table's summary line.
type planSummary struct {
	Create          int    `json:"create"`
	Update          int    `json:"update"`
	Adopt           int    `json:"adopt"`
	Conflict        int    `json:"conflict"`
	Delete          int    `json:"delete"`
	Orphan          int    `json:"orphan"`
	Observe         int    `json:"observe"`
	None            int    `json:"none"`
	Error           int    `json:"error"`
	RevokesLicenses int    `json:"revokesLicenses"`
	Held            int    `json:"held"`
	Text            string `json:"text"`
}

// runPlan reads the manifests and the cluster, plans, prints, and gates.
func runPlan(ctx context.Context, o *planOptions, stdin io.Reader, stdout, stderr io.Writer, d deps, now time.Time) error {
	manifests, err := readManifests(o, stdin)
	if err != nil {
		return err
	}
	defaultNS, explicitNS, err := o.kube.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return fmt.Errorf("loading the kubeconfig: %w", err)
	}
	pool, err := planPool(o, d.getenv)
	if err != nil {
		return err
	}
	c, err := planClient(o.kube)
	if err != nil {
		return err
	}
	live := &v1alpha1.CustomerList{}
	if err := c.List(ctx, live); err != nil {
		if meta.IsNoMatchError(err) {
			return fmt.Errorf("listing Customers: the Customer CRD is not installed in this cluster: %w", err)
		}
		return fmt.Errorf("listing the Customers of every namespace (the operator's rivals can be anywhere): %w", err)
	}
	v, err := loadValidator()
	if err != nil {
		return err
	}
	world, keys, refused, err := planWorld(live.Items, manifests, defaultNS, pruneScope(o, explicitNS, defaultNS), now, v.admit)
	if err != nil {
		return err
	}
	var planned []types.NamespacedName
	for _, k := range keys {
		if _, bad := refused[k]; !bad {
			planned = append(planned, k)
		}
	}
	brake := &controllers.PlanBrake{Budget: o.deletionBudget, Window: o.budgetWindow, Namespace: o.budgetNamespace, Reader: c}
	if o.deletionBudget > 0 {
		// A wrong namespace would show every account's window empty.
		if err := c.Get(ctx, client.ObjectKey{Name: o.budgetNamespace}, &corev1.Namespace{}); apierrors.IsNotFound(err) {
			fmt.Fprintf(stderr, "plan: warning: namespace %s does not exist, so the revocation brake's windows are taken as empty; give the manager's --deletion-budget-namespace (the operator's namespace)\n", o.budgetNamespace)
		}
	}
	decided, err := controllers.Plan(ctx, controllers.PlanInput{Customers: world, Keys: planned, Secrets: c, Accounts: pool, Now: now, Brake: brake})
	if err != nil {
		return err
	}
	items := make([]controllers.PlanItem, 0, len(keys))
	for _, k := range keys {
		if msg, bad := refused[k]; bad {
			items = append(items, controllers.PlanItem{Namespace: k.Namespace, Name: k.Name, Action: controllers.PlanError, Reason: "Invalid", Message: msg})
			continue
		}
		items, decided = append(items, decided[0]), decided[1:]
	}
	specs := map[types.NamespacedName]*v1alpha1.CustomerSpec{}
	for i := range world {
		specs[client.ObjectKeyFromObject(&world[i])] = &world[i].Spec
	}
	for i := range items {
		if items[i].Fields == nil {
			items[i].Fields = []string{} // always a list for bots
		}
		if o.hideValues {
			hideValues(&items[i], specs[types.NamespacedName{Namespace: items[i].Namespace, Name: items[i].Name}])
		}
	}
	report := planReport{Items: items, Summary: summarize(items)}
	if o.output == "json" {
		err = printDocument(stdout, "json", report)
	} else {
		err = printPlanTable(stdout, report)
	}
	if err != nil {
		return err
	}
	if why := gate(o.failOn, report); why != "" {
		fmt.Fprintln(stderr, "plan: --fail-on:", why)
		return exitError{code: planExitCode, msg: why}
	}
	return nil
}

// pruneRule says which live Customers --prune takes as deleted: those
// matching selector in namespaces (filled in by planWorld with the
// manifests' namespaces).
type pruneRule struct {
	selector   labels.Selector
	namespaces map[string]bool
}

// pruneScope is nil without --prune; else the rule, with --namespace when
// it is given explicitly.
func pruneScope(o *planOptions, explicit bool, ns string) *pruneRule {
	if !o.prune {
		return nil
	}
	p := &pruneRule{selector: labels.Everything(), namespaces: map[string]bool{}}
	if o.selector != "" {
		p.selector, _ = labels.Parse(o.selector) // validated
	}
	if explicit {
		p.namespaces[ns] = true
	}
	return p
}

// admitFunc returns a Customer as the API server would store it when
// applied over old (nil: created), and what it would refuse in it.
type admitFunc func(c, old *v1alpha1.Customer) (*v1alpha1.Customer, []string, error)

// planWorld applies the manifests to the live Customers as an apply would:
// the manifest's spec (with the CRD's defaults) replaces the live one (the
// generation moves on when it changes), its labels and annotations are
// set over the live ones; a manifest of a new Customer is a new object
// created now (or after the newest live one). A manifest the API server would refuse (admit: the CRD's
// schema and CEL rules, transition rules included) changes nothing, and
// refused says why. Pruned Customers get a deletion timestamp. keys are
// the manifests' Customers in their order, then the pruned ones.
func planWorld(live []v1alpha1.Customer, manifests []v1alpha1.Customer, defaultNS string, prune *pruneRule, now time.Time, admit admitFunc) (
	world []v1alpha1.Customer, keys []types.NamespacedName, refused map[types.NamespacedName]string, err error) {
	byKey := map[types.NamespacedName]*v1alpha1.Customer{}
	var order []types.NamespacedName
	for i := range live {
		c := live[i].DeepCopy()
		k := client.ObjectKeyFromObject(c)
		byKey[k] = c
		order = append(order, k)
	}
	// A new Customer is younger than every live one, whatever this
	// machine's clock says against the API server's.
	created := now
	for i := range live {
		if t := live[i].CreationTimestamp.Add(time.Second); t.After(created) {
			created = t
		}
	}
	refused = map[types.NamespacedName]string{}
	inManifests := map[types.NamespacedName]bool{}
	for _, m := range manifests {
		if m.Namespace == "" {
			m.Namespace = defaultNS
		}
		k := client.ObjectKeyFromObject(&m)
		if inManifests[k] {
			return nil, nil, nil, fmt.Errorf("the manifests hold Customer %s twice", k)
		}
		inManifests[k] = true
		keys = append(keys, k)
		if prune != nil {
			prune.namespaces[k.Namespace] = true
		}
		old, exists := byKey[k]
		var c *v1alpha1.Customer
		if exists {
			c = old.DeepCopy()
			c.Labels = mergeMaps(c.Labels, m.Labels)
			c.Annotations = mergeMaps(c.Annotations, m.Annotations)
		} else {
			c = &v1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{
				Name: m.Name, Namespace: m.Namespace, Labels: m.Labels, Annotations: m.Annotations,
				Generation: 1, CreationTimestamp: metav1.NewTime(created),
			}}
		}
		c.Spec = *m.Spec.DeepCopy()
		admitted, problems, err := admit(c, old)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("the Customer manifest %s: %w", k, err)
		}
		if len(problems) > 0 {
			refused[k] = "the API server would refuse this manifest, so the operator would see no change: " + strings.Join(problems, "; ")
			continue
		}
		c.Spec = admitted.Spec
		if exists && !equality.Semantic.DeepEqual(old.Spec, c.Spec) {
			c.Generation++
		}
		if !exists {
			order = append(order, k)
		}
		byKey[k] = c
	}
	var pruned []types.NamespacedName
	if prune != nil {
		for _, k := range order {
			c := byKey[k]
			if inManifests[k] || !prune.namespaces[k.Namespace] || !prune.selector.Matches(labels.Set(c.Labels)) {
				continue
			}
			if c.DeletionTimestamp.IsZero() {
				t := metav1.NewTime(now)
				c.DeletionTimestamp = &t
			}
			pruned = append(pruned, k)
		}
	}
	slices.SortFunc(pruned, func(a, b types.NamespacedName) int { return strings.Compare(a.String(), b.String()) })
	keys = append(keys, pruned...)
	world = make([]v1alpha1.Customer, 0, len(order))
	for _, k := range order {
		world = append(world, *byKey[k])
	}
	return world, keys, refused, nil
}

func mergeMaps(base, over map[string]string) map[string]string {
	if len(over) == 0 {
		return base
	}
	out := make(map[string]string, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

// readManifests returns the Customers of -f and -k, in order; other kinds
// are skipped.
func readManifests(o *planOptions, stdin io.Reader) ([]v1alpha1.Customer, error) {
	var objs []*unstructured.Unstructured
	for _, f := range o.filenames {
		got, err := readPath(f, o.recursive, stdin)
		if err != nil {
			return nil, err
		}
		objs = append(objs, got...)
	}
	if o.kustomize != "" {
		got, err := buildKustomization(o.kustomize)
		if err != nil {
			return nil, err
		}
		objs = append(objs, got...)
	}
	var out []v1alpha1.Customer
	for _, u := range objs {
		gvk := u.GroupVersionKind()
		if gvk.Group != v1alpha1.GroupVersion.Group || gvk.Kind != "Customer" {
			continue
		}
		if gvk.Version != v1alpha1.GroupVersion.Version {
			return nil, fmt.Errorf("the Customer manifest %s: apiVersion %s is not served; use %s", u.GetName(), u.GetAPIVersion(), v1alpha1.GroupVersion)
		}
		c := v1alpha1.Customer{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &c, true); err != nil {
			return nil, fmt.Errorf("the Customer manifest %s: %w", u.GetName(), err)
		}
		if c.Name == "" {
			return nil, errors.New("a Customer manifest has no metadata.name")
		}
		out = append(out, c)
	}
	return out, nil
}

// readPath decodes the objects of a file, of the manifest files of a
// directory, or of stdin ("-").
func readPath(path string, recursive bool, stdin io.Reader) ([]*unstructured.Unstructured, error) {
	if path == "-" {
		return decodeObjects(stdin, "stdin")
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return decodeFile(path)
	}
	var out []*unstructured.Unstructured
	err = filepath.WalkDir(path, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			if p != path && !recursive {
				return filepath.SkipDir
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".yaml", ".yml", ".json":
			got, err := decodeFile(p)
			out = append(out, got...)
			return err
		}
		return nil
	})
	return out, err
}

func decodeFile(path string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	return decodeObjects(f, path)
}

// decodeObjects decodes a YAML or JSON stream; a List's items are its
// objects.
func decodeObjects(r io.Reader, name string) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bufio.NewReader(r), 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		if u.IsList() {
			list, err := u.ToList()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			for i := range list.Items {
				out = append(out, &list.Items[i])
			}
			continue
		}
		out = append(out, u)
	}
}

// buildKustomization builds dir as kubectl kustomize does.
func buildKustomization(dir string) ([]*unstructured.Unstructured, error) {
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("building -k %s: %w", dir, err)
	}
	var out []*unstructured.Unstructured
	for _, r := range resMap.Resources() {
		b, err := r.MarshalJSON()
		if err != nil {
			return nil, err
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(b); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// planClient reads Customers, Secrets, the revocation brake's Leases and
// Namespaces from the cluster; it is used for reads only.
func planClient(getter genericclioptions.RESTClientGetter) (client.Reader, error) {
	cfg, err := getter.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	if cfg.QPS == 0 {
		// A plan of many Customers reads many Secrets, once each.
		cfg.QPS, cfg.Burst = 20, 40
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, coordinationv1.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("connecting to the cluster: %w", err)
	}
	return readerLister{c}, nil
}

// planPool is the operator's account pool, read-only: the default account
// as the manager takes it (no key: no default account).
func planPool(o *planOptions, getenv func(string) string) (*scriptlock.Pool, error) {
	key := strings.TrimSpace(getenv("SCRIPTLOCK_API_KEY"))
	if o.apiKeyFile != "" {
		b, err := os.ReadFile(o.apiKeyFile)
		if err != nil {
			return nil, fmt.Errorf("reading --scriptlock-api-key-file: %w", err)
		}
		if key = strings.TrimSpace(string(b)); key == "" {
			return nil, errors.New("--scriptlock-api-key-file is empty")
		}
	}
	var ca []byte
	if o.caFile != "" {
		var err error
		if ca, err = os.ReadFile(o.caFile); err != nil {
			return nil, fmt.Errorf("reading --scriptlock-ca-file: %w", err)
		}
	}
	if err := scriptlock.ValidateBaseURL(o.scriptlockURL, o.allowInsecureHTTP); err != nil {
		return nil, fmt.Errorf("--scriptlock-url (or SCRIPTLOCK_URL): %w", err)
	}
	defaults := scriptlock.Options{BaseURL: o.scriptlockURL, APIKey: key, CAPEM: ca, AllowInsecureHTTP: o.allowInsecureHTTP, ReadOnly: true,
		AllowedHosts: allowedHosts(o.allowedHosts, o.scriptlockURL)}
	if key != "" {
		if _, err := scriptlock.New(defaults); err != nil {
			return nil, fmt.Errorf("default ScriptLock account: %w", err)
		}
	}
	return scriptlock.NewPool(defaults, nil), nil
}

// allowedHosts is --allowed-scriptlock-hosts plus the default URL's host,
// as the manager takes them; nil allows any host.
func allowedHosts(list, defaultURL string) []string {
	var out []string
	for _, h := range strings.Split(list, ",") {
		if h = strings.TrimSpace(h); h != "" {
			out = append(out, h)
		}
	}
	if len(out) == 0 {
		return nil
	}
	if u, err := url.Parse(defaultURL); err == nil && u.Host != "" {
		out = append(out, u.Host)
	}
	return out
}

// hideValues drops the values of it and scrubs from its message the values
// of its Customer's spec (nil: none) and of the fields it names.
func hideValues(it *controllers.PlanItem, spec *v1alpha1.CustomerSpec) {
	var values []string
	for _, f := range it.Changes {
		values = append(values, f.From, f.To)
	}
	if spec != nil {
		values = append(values, spec.Company, spec.FirstName, spec.LastName, spec.Email)
	}
	it.Changes = nil
	slices.SortFunc(values, func(a, b string) int { return len(b) - len(a) }) // longest first
	for _, v := range values {
		if strings.TrimSpace(v) != "" {
			it.Message = replaceWord(it.Message, v, "***")
		}
	}
}

// replaceWord replaces every case-insensitive occurrence of old in s that
// is a word of its own (no letter or digit right before or after it), so
// that a one-letter name does not take letters out of every word.
func replaceWord(s, old, repl string) string {
	lower, lold := strings.ToLower(s), strings.ToLower(old)
	if len(lower) != len(s) || len(lold) != len(old) {
		return strings.ReplaceAll(s, old, repl)
	}
	var b strings.Builder
	for from := 0; ; {
		i := strings.Index(lower[from:], lold)
		if i < 0 {
			b.WriteString(s[from:])
			return b.String()
		}
		i += from
		end := i + len(old)
		if wordChar(s, i-1) || wordChar(s, end) {
			b.WriteString(s[from:end])
		} else {
			b.WriteString(s[from:i])
			b.WriteString(repl)
		}
		from = end
	}
}

// wordChar says whether s has a letter or digit at byte i (false outside
// s; any byte of a multi-byte rune counts as a letter).
func wordChar(s string, i int) bool {
	if i < 0 || i >= len(s) {
		return false
	}
	c := s[i]
	return c >= 0x80 || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// summarize counts the items.
func summarize(items []controllers.PlanItem) planSummary {
	var s planSummary
	for _, it := range items {
		switch it.Action {
		case controllers.PlanCreate:
			s.Create++
		case controllers.PlanUpdate:
			s.Update++
		case controllers.PlanAdopt:
			s.Adopt++
		case controllers.PlanConflict:
			s.Conflict++
		case controllers.PlanDelete:
			s.Delete++
		case controllers.PlanOrphan:
			s.Orphan++
		case controllers.PlanObserve:
			s.Observe++
		case controllers.PlanNone:
			s.None++
		case controllers.PlanError:
			s.Error++
		}
		if it.RevokesLicenses {
			s.RevokesLicenses++
		}
		if it.Held {
			s.Held++
		}
	}
	var parts []string
	for _, p := range []struct {
		n    int
		name string
	}{{s.Create, "create"}, {s.Update, "update"}, {s.Adopt, "adopt"}, {s.Conflict, "conflict"}, {s.Delete, "delete"}, {s.Orphan, "orphan"}, {s.Observe, "observe"}, {s.Error, "error"}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.name))
		}
	}
	s.Text = "no change"
	if len(parts) > 0 {
		s.Text = strings.Join(parts, ", ")
	}
	var danger []string
	switch s.RevokesLicenses {
	case 0:
	case 1:
		danger = append(danger, "revokes licenses of 1 customer")
	default:
		danger = append(danger, fmt.Sprintf("revokes licenses of %d customers", s.RevokesLicenses))
	}
	if s.Held > 0 {
		danger = append(danger, fmt.Sprintf("%d held by the revocation brake", s.Held))
	}
	if len(danger) > 0 {
		s.Text += " — " + strings.Join(danger, ", ")
	}
	if s.None > 0 {
		s.Text += fmt.Sprintf(" (%d unchanged)", s.None)
	}
	return s
}

// gate returns why a --fail-on gate matches, or "".
func gate(failOn []string, r planReport) string {
	if len(failOn) == 0 {
		return ""
	}
	s := r.Summary
	var why []string
	if s.Error > 0 {
		why = append(why, fmt.Sprintf("%d Customers cannot be planned", s.Error))
	}
	for _, f := range failOn {
		switch {
		case f == "revoke" && s.RevokesLicenses+s.Held > 0:
			if s.RevokesLicenses > 0 {
				why = append(why, fmt.Sprintf("revokes licenses of %d customers", s.RevokesLicenses))
			}
			if s.Held > 0 {
				// A held delete is a revocation waiting for a person.
				why = append(why, fmt.Sprintf("%d deletions that revoke licenses wait for approval (held by the revocation brake)", s.Held))
			}
		case f == "conflict" && s.Conflict > 0:
			why = append(why, fmt.Sprintf("%d conflicts", s.Conflict))
		case f == "any" && len(r.Items)-s.None-s.Error > 0:
			why = append(why, fmt.Sprintf("%d changes", len(r.Items)-s.None-s.Error))
		}
	}
	return strings.Join(why, "; ")
}

// printPlanTable prints the plan: deletes that revoke licenses first, then
// those the revocation brake holds, then the other items in their order,
// each change of value on a line of its own, and the summary line.
func printPlanTable(w io.Writer, r planReport) error {
	items := slices.Clone(r.Items)
	rank := func(it controllers.PlanItem) int {
		switch {
		case it.RevokesLicenses:
			return 0
		case it.Held:
			return 1
		default:
			return 2
		}
	}
	slices.SortStableFunc(items, func(a, b controllers.PlanItem) int { return rank(a) - rank(b) })
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tACTION\tRECORD\tFIELDS\tREASON\tMESSAGE")
	for _, it := range items {
		action := string(it.Action)
		switch {
		case it.RevokesLicenses && it.Reason == controllers.PlanReasonCredentialsGone:
			// The plan cannot read the record; a running operator that
			// still has the account's client DELETEs it.
			action = "DELETE (may revoke licenses)"
		case it.RevokesLicenses:
			action = "DELETE (revokes licenses)"
		case it.Held:
			action = "DELETE (held by the revocation brake)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", it.Namespace, it.Name, action, orDash(it.RecordID),
			orDash(strings.Join(it.Fields, ",")), orDash(it.Reason), oneLine(it.Message, 120))
		for _, f := range it.Changes {
			fmt.Fprintf(tw, "\t\t\t\t\t\t  %s: %s → %s\n", f.Name, quoteValue(f.From), quoteValue(f.To))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, r.Summary.Text)
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// quoteValue shows a value on one line, quoted, so that spaces and empty
// values are visible.
func quoteValue(v string) string {
	b, _ := json.Marshal(v)
	return string(b)
}
