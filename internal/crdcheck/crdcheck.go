// Package crdcheck checks, before the manager starts, that the Customer API
// the cluster serves has every field the manager relies on.
//
// The manager writes its crash-safety proof (status.pendingCreate), the
// account and URL a record lives in, and reads spec fields such as
// managementPolicy. A CRD older than the manager (an upgrade that left the
// CRD alone) lacks some of them, and the API server silently prunes a field
// its schema does not have: the proof is lost on every write, every pass
// writes the status again, and a spec field a user sets never reaches the
// manager. So the manager compares the installed schema with the one it was
// built with (customer_crd.yaml, a copy of the generated CRD; `make
// manifests` refreshes it) and refuses to start, naming what is missing and
// how to update the CRD.
package crdcheck

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/openapi"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	buildversion "github.com/scriptlock/customer-operator/internal/version"
)

// customerCRD is the CRD this manager was built with. TestEmbeddedCRDIsCurrent
// fails when it is stale.
//
//go:generate cp ../../config/crd/bases/licensing.scriptlock.com_customers.yaml customer_crd.yaml
//go:embed customer_crd.yaml
var customerCRD []byte

// crdFile is where the release's source holds the CRD.
const crdFile = "config/crd/bases/licensing.scriptlock.com_customers.yaml"

// The manager reads its own CRD, and no other.
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get,resourceNames=customers.licensing.scriptlock.com

// Check returns an error, meant to stop the manager, when the API server
// does not serve the Customer API this manager was built with: the CRD is
// absent, the manager's version is not served, the status subresource is
// off, or a field is missing or of another type. The message names each
// problem and the command that updates the CRD.
//
// The CRD is read with `get` on that one CustomResourceDefinition. A
// manager that may not (namespace-scoped mode: a Role cannot grant a
// cluster-scoped resource) reads instead the schema the API server
// publishes for the group version (/openapi/v3), which every authenticated
// client may read; it lags a CRD change by a moment, so a manager started
// in that moment may refuse once and pass on its restart.
func Check(ctx context.Context, cfg *rest.Config) error {
	want, err := builtWith()
	if err != nil {
		return err
	}
	have, found, err := installed(ctx, cfg, want)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("the CustomResourceDefinition %s is not installed: install it, then start the manager again: %s",
			want.name, updateCommand(buildversion.Version))
	}
	if ps := compare(want.version, have); len(ps) > 0 {
		return fmt.Errorf("the installed CustomResourceDefinition %s is older than this manager (%s) or differs from it, so the manager does not start: %s. "+
			"Update the CRD to this manager's version, then start the manager again: %s",
			want.name, buildversion.Version, describe(v1alpha1.GroupVersion.Version, ps), updateCommand(buildversion.Version))
	}
	return nil
}

// updateCommand is how to install the CRD of the manager's version: from
// the release's tagged source, or from the checkout a dev build came from.
func updateCommand(v string) string {
	if strings.HasPrefix(v, "v") && !strings.Contains(v, "dirty") {
		return fmt.Sprintf("kubectl apply --server-side -f https://raw.githubusercontent.com/scriptlock/customer-operator/%s/%s (from a checkout of %s: make install)", v, crdFile, v)
	}
	return fmt.Sprintf("kubectl apply --server-side -f %s in the checkout this manager was built from (make install)", crdFile)
}

// builtIn is the CRD name and the manager's version of the schema.
type builtIn struct {
	name    string
	names   apiextensionsv1.CustomResourceDefinitionNames
	version *version
}

func builtWith() (builtIn, error) {
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(customerCRD, &crd); err != nil {
		return builtIn{}, fmt.Errorf("decoding the built-in Customer CRD: %w", err)
	}
	v, err := fromCRD(&crd)
	if err != nil {
		return builtIn{}, fmt.Errorf("decoding the built-in Customer CRD: %w", err)
	}
	if v == nil {
		return builtIn{}, fmt.Errorf("the built-in Customer CRD does not serve %s", v1alpha1.GroupVersion.Version)
	}
	return builtIn{name: crd.Name, names: crd.Spec.Names, version: v}, nil
}

// fromCRD is the manager's version as crd serves it; nil when it does not.
func fromCRD(crd *apiextensionsv1.CustomResourceDefinition) (*version, error) {
	i := slices.IndexFunc(crd.Spec.Versions, func(v apiextensionsv1.CustomResourceDefinitionVersion) bool {
		return v.Name == v1alpha1.GroupVersion.Version
	})
	if i < 0 || !crd.Spec.Versions[i].Served {
		return nil, nil
	}
	cv := crd.Spec.Versions[i]
	v := &version{schema: &node{}, status: cv.Subresources != nil && cv.Subresources.Status != nil}
	if cv.Schema == nil || cv.Schema.OpenAPIV3Schema == nil {
		return v, nil
	}
	b, err := json.Marshal(cv.Schema.OpenAPIV3Schema)
	if err != nil {
		return nil, err
	}
	return v, json.Unmarshal(b, v.schema)
}

// installed reads the manager's version of the Customer API from the CRD,
// or, when the CRD may not be read, from the published schema. found is
// false when the CRD does not exist.
func installed(ctx context.Context, cfg *rest.Config, want builtIn) (v *version, found bool, err error) {
	name := want.name
	scheme := runtime.NewScheme()
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		return nil, false, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, false, err
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	switch err := c.Get(ctx, client.ObjectKey{Name: name}, crd); {
	case apierrors.IsNotFound(err):
		return nil, false, nil
	case apierrors.IsForbidden(err):
		v, found, perr := published(ctx, cfg, want.names)
		if perr != nil {
			return nil, false, fmt.Errorf("checking the Customer API: reading the CustomResourceDefinition %s is forbidden (%w), and the schema the API server publishes cannot be read either: %w", name, err, perr)
		}
		return v, found, nil
	case err != nil:
		return nil, false, fmt.Errorf("checking the Customer API: reading the CustomResourceDefinition %s: %w", name, err)
	}
	v, err = fromCRD(crd)
	return v, true, err
}

// published reads the manager's version of the Customer API from the
// OpenAPI v3 document the API server serves for its group version. found
// is false when the group is not served at all (no CRD); a served group
// without the manager's version gives a nil version.
func published(ctx context.Context, cfg *rest.Config, names apiextensionsv1.CustomResourceDefinitionNames) (v *version, found bool, err error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, false, err
	}
	gv := v1alpha1.GroupVersion
	groups, err := dc.ServerGroups()
	if err != nil {
		return nil, false, err
	}
	if !slices.ContainsFunc(groups.Groups, func(g metav1.APIGroup) bool { return g.Name == gv.Group }) {
		return nil, false, nil
	}
	paths, err := openapi.ToClientWithContext(dc.OpenAPIV3()).PathsWithContext(ctx)
	if err != nil {
		return nil, false, err
	}
	p, ok := paths["apis/"+gv.Group+"/"+gv.Version]
	if !ok {
		return nil, true, nil
	}
	b, err := p.SchemaWithContext(ctx, runtime.ContentTypeJSON)
	if err != nil {
		return nil, true, err
	}
	v, err = fromPublished(b, names)
	return v, true, err
}

// fromPublished finds the kind in an OpenAPI v3 document of its
// group version; the status subresource shows as the path of its own.
func fromPublished(doc []byte, names apiextensionsv1.CustomResourceDefinitionNames) (*version, error) {
	var d struct {
		Paths      map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("decoding the published Customer schema: %w", err)
	}
	gv := v1alpha1.GroupVersion
	for _, raw := range d.Components.Schemas {
		var s struct {
			GVK []struct{ Group, Version, Kind string } `json:"x-kubernetes-group-version-kind"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("decoding the published Customer schema: %w", err)
		}
		if !slices.ContainsFunc(s.GVK, func(k struct{ Group, Version, Kind string }) bool {
			return k.Group == gv.Group && k.Version == gv.Version && k.Kind == names.Kind
		}) {
			continue
		}
		v := &version{schema: &node{}}
		if err := json.Unmarshal(raw, v.schema); err != nil {
			return nil, fmt.Errorf("decoding the published Customer schema: %w", err)
		}
		for p := range d.Paths {
			if strings.HasSuffix(p, "/"+names.Plural+"/{name}/status") {
				v.status = true
			}
		}
		return v, nil
	}
	return nil, nil
}
