package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
	name := types.NamespacedName{Namespace: c.Namespace, Name: ref.Name}
	if r.memory.freshWait(client.ObjectKeyFromObject(c), c.Generation, c.ResourceVersion, r.Clock.Now().Add(-secretsFresh)) {
		// Back from a wait the operator imposed on itself, the decision
		// is still fresh: no need to read the Secret again.
		if cl := r.secrets.get(name, r.Clock.Now()); cl != nil {
			return cl, nil
		}
	}
	s := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, name, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, secretGone{fmt.Errorf("%w: Secret %q not found in namespace %q", errCredentials, ref.Name, c.Namespace)}
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
	r.secrets.put(name, cl, r.Clock.Now())
	return cl, nil
}

// secretsFresh is how long, after a pass that ended in a wait the operator
// imposed on itself (its in-flight cap, its rate limit), the next pass on
// the same copy of the object uses what that pass read: the account the
// credentials Secret named, and (for a Customer without a record) the
// object itself, without reading either from the API server again. Secrets are not watched or cached (a
// manager must not hold every Secret of the cluster), so without it every
// such pass would read the Secret from the API server: many a minute while
// Customers wait their turn at a busy account. Any other pass reads it.
const secretsFresh = 5 * time.Second

// secretAccounts remembers, for secretsFresh, the client each credentials
// Secret resolved to. It holds clients, never keys.
type secretAccounts struct {
	mu      sync.Mutex
	clients map[types.NamespacedName]secretAccount
}

type secretAccount struct {
	client *scriptlock.Client
	at     time.Time
}

// get returns the client Secret name resolved to less than secretsFresh
// before now, or nil.
func (s *secretAccounts) get(name types.NamespacedName, now time.Time) *scriptlock.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.clients[name]
	if !ok || now.Sub(a.at) >= secretsFresh {
		return nil
	}
	return a.client
}

// put records that Secret name resolved to cl at now, and forgets the
// entries that are no longer fresh.
func (s *secretAccounts) put(name types.NamespacedName, cl *scriptlock.Client, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clients == nil {
		s.clients = map[types.NamespacedName]secretAccount{}
	}
	for n, a := range s.clients {
		if now.Sub(a.at) >= secretsFresh {
			delete(s.clients, n)
		}
	}
	s.clients[name] = secretAccount{client: cl, at: now}
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

// secretGone is the credentials error for a Secret that does not exist
// (deleted, say, with its namespace): the one case in which a deletion may
// use the key it last used, and only if it came from that very Secret
// (reconcileDelete).
type secretGone struct{ error }

func (e secretGone) Unwrap() error { return e.error }

func isSecretGone(err error) bool { return errors.As(err, new(secretGone)) }

// credentialsVia names what c's credentials come from: its Secret's name,
// or "" for the default key.
func credentialsVia(c *v1alpha1.Customer) string {
	if ref := c.Spec.CredentialsSecretRef; ref != nil {
		return ref.Name
	}
	return ""
}
