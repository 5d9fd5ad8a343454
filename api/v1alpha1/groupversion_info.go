// Package v1alpha1 contains the Customer API of the licensing.scriptlock.com
// group: a Customer object stands for one customer record in ScriptLock.
//
// +kubebuilder:object:generate=true
// +groupName=licensing.scriptlock.com
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of the Customer API.
	GroupVersion = schema.GroupVersion{Group: "licensing.scriptlock.com", Version: "v1alpha1"}

	// SchemeBuilder adds the types of this package to a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// addKnownTypes registers the Customer kinds; it is explicit rather than an
// init() registry so that a reader sees every type the scheme gets.
func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &Customer{}, &CustomerList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
