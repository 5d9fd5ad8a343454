package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scriptlock/customer-operator/internal/version"
)

// The operator's label is on every object config/default and the chart
// install, the manager's Deployment among them.
const (
	operatorLabelKey   = "app.kubernetes.io/name"
	operatorLabelValue = "customer-operator"
	operatorLabel      = operatorLabelKey + "=" + operatorLabelValue
)

// versionReport is what `version -o json|yaml` prints.
type versionReport struct {
	ClientVersion     string            `json:"clientVersion"`
	Operators         []operatorVersion `json:"operators"`
	KubernetesVersion string            `json:"kubernetesVersion"`
}

// operatorVersion is one manager Deployment in the cluster; its version is
// its image's tag (a release's image is tagged with the release), or the
// digest.
type operatorVersion struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Version   string `json:"version"`
	Image     string `json:"image"`
}

// newVersionCmd is `kubectl scriptlock version`.
func newVersionCmd(stdout io.Writer) *cobra.Command {
	kube := genericclioptions.NewConfigFlags(false)
	var clientOnly bool
	var output string
	cmd := &cobra.Command{
		Use:   "version [--client] [-o json|yaml]",
		Short: "Print the plugin's version, the operator's in the cluster, and Kubernetes'",
		Long: `Print the plugin's version (the same as the operator's manager --version
of the same build), the version of every operator Deployment in the cluster
(label ` + operatorLabel + `; every namespace, or the one -n names), and
the Kubernetes API server's. With --client, only the plugin's, bare.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Stamped at build time, as the manager's (Makefile LDFLAGS).
			if clientOnly {
				_, err := fmt.Fprintln(stdout, version.Version)
				return err
			}
			if output != "" && output != "json" && output != "yaml" {
				return fmt.Errorf("--output must be json or yaml, not %q", output)
			}
			r, err := serverVersions(cmd.Context(), kube)
			if output != "" {
				if err != nil {
					return err
				}
				return printDocument(stdout, output, r)
			}
			fmt.Fprintf(stdout, "Client Version: %s\n", r.ClientVersion)
			if err != nil {
				return err
			}
			for _, o := range r.Operators {
				fmt.Fprintf(stdout, "Operator Version: %s (%s/%s)\n", o.Version, o.Namespace, o.Name)
			}
			if len(r.Operators) == 0 {
				fmt.Fprintf(stdout, "Operator Version: none found (no Deployment labelled %s)\n", operatorLabel)
			}
			_, err = fmt.Fprintf(stdout, "Kubernetes Version: %s\n", r.KubernetesVersion)
			return err
		},
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "Print the plugin's version only, without contacting the cluster.")
	cmd.Flags().StringVarP(&output, "output", "o", "", "Print json or yaml instead of text.")
	kube.AddFlags(cmd.Flags())
	return cmd
}

// serverVersions asks the cluster of the kubeconfig flags for its
// Kubernetes version and its operator Deployments. The report always
// holds the client's version.
func serverVersions(ctx context.Context, kube *genericclioptions.ConfigFlags) (versionReport, error) {
	r := versionReport{ClientVersion: version.Version, Operators: []operatorVersion{}}
	cfg, err := kube.ToRESTConfig()
	if err != nil {
		return r, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return r, fmt.Errorf("connecting to the cluster: %w", err)
	}
	info, err := dc.ServerVersion()
	if err != nil {
		return r, fmt.Errorf("asking the cluster for its version: %w", err)
	}
	r.KubernetesVersion = info.GitVersion

	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return r, fmt.Errorf("connecting to the cluster: %w", err)
	}
	opts := []client.ListOption{client.MatchingLabels{operatorLabelKey: operatorLabelValue}}
	if ns := *kube.Namespace; ns != "" {
		opts = append(opts, client.InNamespace(ns))
	}
	var deps appsv1.DeploymentList
	if err := c.List(ctx, &deps, opts...); err != nil {
		return r, fmt.Errorf("listing the operator's Deployments (%s): %w", operatorLabel, err)
	}
	for _, d := range deps.Items {
		for _, ct := range d.Spec.Template.Spec.Containers {
			if ct.Name == "manager" {
				r.Operators = append(r.Operators, operatorVersion{Namespace: d.Namespace, Name: d.Name, Version: imageVersion(ct.Image), Image: ct.Image})
			}
		}
	}
	slices.SortFunc(r.Operators, func(a, b operatorVersion) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return r, nil
}

// imageVersion is the digest of image if it has one, else its tag, else
// "latest" (what a reference without either means).
func imageVersion(image string) string {
	if _, digest, ok := strings.Cut(image, "@"); ok {
		return digest
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[i+1:]
	}
	return "latest"
}
