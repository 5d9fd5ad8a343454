package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// deps are what run needs from the outside world, so that tests can
// replace the environment and the cluster.
type deps struct {
	getenv func(string) string
	// newLister connects to the cluster the kubeconfig flags point at.
	newLister func(genericclioptions.RESTClientGetter) (customerLister, error)
	// newReader connects to the cluster the kubeconfig flags point at.
	newReader func(genericclioptions.RESTClientGetter) (client.Reader, error)
}

func defaultDeps() deps {
	return deps{getenv: os.Getenv, newLister: clusterLister, newReader: clusterReader}
}

// clusterLister returns a lister backed by a controller-runtime client.
func clusterLister(getter genericclioptions.RESTClientGetter) (customerLister, error) {
	c, err := clusterReader(getter)
	if err != nil {
		return nil, err
	}
	return readerLister{c}, nil
}

// clusterReader returns a controller-runtime client that knows Customers.
func clusterReader(getter genericclioptions.RESTClientGetter) (client.Reader, error) {
	cfg, err := getter.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("connecting to the cluster: %w", err)
	}
	return readerLister{c}, nil
}

// importOptions is everything the import flags and environment say.
type importOptions struct {
	scriptlockURL     string
	apiKeyFile        string
	caFile            string
	allowInsecureHTTP bool
	outputDir         string
	skipManaged       bool
	deletionPolicy    string
	manifest          manifestOptions
	kube              *genericclioptions.ConfigFlags
}

// newImportCmd is `kubectl scriptlock import`.
func newImportCmd(stdout, stderr io.Writer, d deps) *cobra.Command {
	o := &importOptions{}
	cmd := &cobra.Command{
		Use:   "import [flags]",
		Short: "Write a Customer manifest for every record of a ScriptLock account",
		Long: `Write a Customer manifest for every record of a ScriptLock account, for
onboarding existing customers into GitOps (docs/import.md). Records the API
server would refuse are skipped with a warning on stderr.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unexpected arguments: %s", strings.Join(args, " "))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			if o.scriptlockURL == "" {
				o.scriptlockURL = envOr(d.getenv, "SCRIPTLOCK_URL", scriptlock.DefaultBaseURL)
			}
			return runImport(cmd.Context(), o, stdout, stderr, d)
		},
	}
	getenv := d.getenv
	fs := cmd.Flags()
	fs.SortFlags = false
	// No default in the flag: help text would show SCRIPTLOCK_URL's value,
	// and a URL can hold a key. It is read when the command runs.
	fs.StringVar(&o.scriptlockURL, "scriptlock-url", "", "Base URL of the ScriptLock API (default: env SCRIPTLOCK_URL, else "+scriptlock.DefaultBaseURL+").")
	fs.StringVar(&o.apiKeyFile, "api-key-file", "", "File holding the ScriptLock API key; else the env SCRIPTLOCK_API_KEY holds the key itself.")
	fs.StringVar(&o.caFile, "ca-file", getenv("SCRIPTLOCK_CA_FILE"), "PEM bundle of CAs to trust for ScriptLock instead of the system roots (env SCRIPTLOCK_CA_FILE).")
	fs.BoolVar(&o.allowInsecureHTTP, "allow-insecure-http", false, "Allow a plain http:// ScriptLock URL on a non-loopback host (the API key then crosses the network in clear text).")
	fs.StringVarP(&o.manifest.Namespace, "namespace", "n", "default", "Namespace written into every manifest.")
	fs.StringVar(&o.deletionPolicy, "deletion-policy", string(v1alpha1.DeletionPolicyOrphan), "spec.deletionPolicy of the manifests: Orphan (deleting a Customer keeps the record and its licenses) or Delete (revokes them).")
	fs.StringVar(&o.manifest.CredentialsSecret, "credentials-secret", "", "Name of a Secret in --namespace with the account's credentials, written as spec.credentialsSecretRef; empty means the operator's default account.")
	fs.StringVar(&o.outputDir, "output-dir", "", "Write one <name>.yaml per Customer into this directory (created if missing; files of the same name are replaced) instead of a YAML stream on stdout.")
	fs.BoolVar(&o.manifest.Observe, "observe", false, "Write spec.managementPolicy: Observe: the operator then never writes to these records and reports how they differ from the manifests; switch a Customer to Manage once its differences are reviewed.")
	fs.BoolVar(&o.skipManaged, "skip-managed", false, "List the Customers of the cluster (all namespaces; --kubeconfig, --context or KUBECONFIG) and skip records they already manage.")
	o.kube = genericclioptions.NewConfigFlags(false)
	o.kube.Namespace = nil // --namespace above is the manifests' namespace, not the kubeconfig's
	o.kube.AddFlags(fs)
	return cmd
}

// validate checks the flags that have a fixed set of values.
func (o *importOptions) validate() error {
	switch p := v1alpha1.DeletionPolicy(o.deletionPolicy); p {
	case v1alpha1.DeletionPolicyOrphan, v1alpha1.DeletionPolicyDelete:
		o.manifest.DeletionPolicy = p
	default:
		return fmt.Errorf("--deletion-policy must be Orphan or Delete, not %q", o.deletionPolicy)
	}
	if errs := validation.IsDNS1123Label(o.manifest.Namespace); len(errs) > 0 {
		return fmt.Errorf("--namespace %q: %s", o.manifest.Namespace, strings.Join(errs, "; "))
	}
	if s := o.manifest.CredentialsSecret; s != "" {
		if errs := validation.IsDNS1123Subdomain(s); len(errs) > 0 {
			return fmt.Errorf("--credentials-secret %q: %s", s, strings.Join(errs, "; "))
		}
	}
	return nil
}

// runImport lists the account's records and writes a Customer manifest for
// each one that is valid and not already managed.
func runImport(ctx context.Context, o *importOptions, stdout, stderr io.Writer, d deps) error {
	sl, err := newScriptLockClient(o, d.getenv)
	if err != nil {
		return err
	}

	// Read the cluster first: it fails faster, and before the account is
	// read there is nothing to lose.
	idx := newManagedIndex(nil, o.manifest.Namespace)
	if o.skipManaged {
		lister, err := d.newLister(o.kube)
		if err != nil {
			return err
		}
		customers, err := lister.ListCustomers(ctx)
		if err != nil {
			return err
		}
		idx = newManagedIndex(customers, o.manifest.Namespace)
	}

	records, err := sl.List(ctx)
	if err != nil {
		return fmt.Errorf("listing the ScriptLock account's customers: %w", err)
	}
	sortRecords(records)

	var keep []scriptlock.Customer
	var managed, invalid int
	for _, r := range records {
		if reason, ok := idx.managedBy(r); ok {
			managed++
			fmt.Fprintf(stderr, "skipping customer %s (%s): %s\n", displayID(r.ID), quoteShort(r.Email), reason)
			continue
		}
		if problems := recordProblems(r); len(problems) > 0 {
			invalid++
			fmt.Fprintf(stderr, "warning: skipping customer %s: the API server would refuse it: %s\n", displayID(r.ID), strings.Join(problems, "; "))
			continue
		}
		keep = append(keep, r)
	}

	names := assignNames(keep, idx.names)
	docs := make([][]byte, len(keep))
	for i, r := range keep {
		if docs[i], err = manifestYAML(toCustomer(r, names[i], o.manifest)); err != nil {
			return err
		}
	}
	if err := writeManifests(stdout, o.outputDir, names, docs); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "imported %d, skipped %d (already managed %d, invalid %d)\n",
		len(keep), managed+invalid, managed, invalid)
	return nil
}

// newScriptLockClient builds the account's client from the flags.
func newScriptLockClient(o *importOptions, getenv func(string) string) (*scriptlock.Client, error) {
	key := strings.TrimSpace(getenv("SCRIPTLOCK_API_KEY"))
	if o.apiKeyFile != "" {
		b, err := os.ReadFile(o.apiKeyFile)
		if err != nil {
			return nil, fmt.Errorf("reading --api-key-file: %w", err)
		}
		if key = strings.TrimSpace(string(b)); key == "" {
			return nil, errors.New("--api-key-file is empty")
		}
	}
	if key == "" {
		return nil, errors.New("no ScriptLock API key: give --api-key-file or set SCRIPTLOCK_API_KEY")
	}
	var ca []byte
	if o.caFile != "" {
		var err error
		if ca, err = os.ReadFile(o.caFile); err != nil {
			return nil, fmt.Errorf("reading --ca-file: %w", err)
		}
	}
	c, err := scriptlock.New(scriptlock.Options{
		BaseURL: o.scriptlockURL, APIKey: key, CAPEM: ca, AllowInsecureHTTP: o.allowInsecureHTTP,
	})
	if err != nil {
		return nil, fmt.Errorf("ScriptLock account: %w", err)
	}
	return c, nil
}

// writeManifests writes docs as one YAML stream to stdout, or as
// dir/<name>.yaml files when dir is set.
func writeManifests(stdout io.Writer, dir string, names []string, docs [][]byte) error {
	if dir == "" {
		var buf bytes.Buffer
		for i, doc := range docs {
			if i > 0 {
				buf.WriteString("---\n")
			}
			buf.Write(doc)
		}
		_, err := stdout.Write(buf.Bytes())
		return err
	}
	// The manifests hold customers' names and emails: readable by the user
	// (and group) only, like any export of personal data; git does not
	// record these bits.
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("creating --output-dir: %w", err)
	}
	for i, doc := range docs {
		// names are DNS-1123 labels: no separators, so no path escapes.
		if err := os.WriteFile(filepath.Join(dir, names[i]+".yaml"), doc, 0o600); err != nil {
			return fmt.Errorf("writing manifest: %w", err)
		}
	}
	return nil
}

func envOr(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}
