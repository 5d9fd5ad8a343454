package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/internal/scriptlock"
)

// Keys of a credentials Secret named by spec.credentialsSecretRef.
const (
	SecretKeyAPIKey = "apiKey"
	SecretKeyURL    = "url"
	SecretKeyCA     = "ca.crt"
)

// errCredentials marks a problem with the account a Customer names (no such
// Secret, no apiKey, an unusable URL or CA): a person has to fix it.
var errCredentials = errors.New("invalid ScriptLock credentials")

// account returns the ScriptLock client for c: the account of its
// credentialsSecretRef, read with a plain get from c's own namespace (never
// cached, never watched), or the operator's default account.
func (r *CustomerReconciler) account(ctx context.Context, c *v1alpha1.Customer) (*scriptlock.Client, error) {
	ref := c.Spec.CredentialsSecretRef
	if ref == nil {
		cl, err := r.Accounts.Default()
		if err != nil {
			return nil, fmt.Errorf("%w: no default account is configured (set --scriptlock-api-key-file or SCRIPTLOCK_API_KEY) and spec.credentialsSecretRef is empty", errCredentials)
		}
		return cl, nil
	}
	s := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: ref.Name}, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%w: Secret %q not found in namespace %q", errCredentials, ref.Name, c.Namespace)
		}
		if apierrors.IsForbidden(err) {
			return nil, fmt.Errorf("%w: the operator may not read Secret %q in namespace %q", errCredentials, ref.Name, c.Namespace)
		}
		return nil, fmt.Errorf("reading credentials Secret %q: %w", ref.Name, err)
	}
	key := strings.TrimSpace(string(s.Data[SecretKeyAPIKey]))
	if key == "" {
		return nil, fmt.Errorf("%w: Secret %q has no %q key", errCredentials, ref.Name, SecretKeyAPIKey)
	}
	cl, err := r.Accounts.For(strings.TrimSpace(string(s.Data[SecretKeyURL])), key, s.Data[SecretKeyCA])
	if err != nil {
		return nil, secretError(ref.Name, key, err)
	}
	return cl, nil
}

// secretError is the credentials error for an account the Secret name
// describes but that cannot be used. The pool refuses a URL that holds the
// key and names a URL by scheme and host only, but its errors come from the
// Secret's url and ca.crt, the tenant's own text: the message is scrubbed
// of every spelling of the key (scriptlock.Redact) whatever the pool says,
// and wraps no error that could show the text unscrubbed.
func secretError(secret, key string, err error) error {
	return fmt.Errorf("%w: Secret %q: %s", errCredentials, secret, scriptlock.Redact(err.Error(), key))
}

func isCredentials(err error) bool { return errors.Is(err, errCredentials) }
