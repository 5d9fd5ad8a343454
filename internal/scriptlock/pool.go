package scriptlock

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"net/url"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// maxPooledClients bounds the cache: every rotated key adds an account, and
// an operator running for months must not grow without limit. It bounds the
// accounts (gates) and the Clients separately.
const maxPooledClients = 256

// Pool hands out one Client per base URL, key and CA, so that callers share
// its http.Client and connections, and one gate per account (base URL +
// key, whatever the CA), so that every Client of the account shares the
// rate limiter, the hold after Retry-After or repeated timeouts, and the
// in-flight cap: reaching the same account with and without a ca.crt does
// not double its allowance. It is safe for concurrent use.
type Pool struct {
	defaults Options
	metrics  *metrics

	mu      sync.Mutex
	clients map[[sha256.Size]byte]*Client
	gates   map[[sha256.Size]byte]*gate
	hosts   map[string]*gate // by scheme://host[:port]
}

// NewPool returns a Pool whose accounts inherit defaults (timeout, QPS,
// burst, MaxInFlight, CA, base URL, AllowInsecureHTTP, AllowedHosts).
// Metrics are registered on reg, which may be nil; registering twice on the
// same reg is safe.
func NewPool(defaults Options, reg prometheus.Registerer) *Pool {
	return &Pool{
		defaults: defaults,
		metrics:  newMetrics(reg),
		clients:  map[[sha256.Size]byte]*Client{},
		gates:    map[[sha256.Size]byte]*gate{},
		hosts:    map[string]*gate{},
	}
}

// Default returns the Client of the default account. It fails if the
// defaults carry no API key.
func (p *Pool) Default() (*Client, error) {
	p.mu.Lock()
	key := p.defaults.APIKey
	p.mu.Unlock()
	if key == "" {
		return nil, errors.New("scriptlock: no default API key configured")
	}
	return p.For("", key, nil)
}

// SetDefaultAPIKey replaces the default account's key, for a key file that
// was rotated on disk. Clients already handed out keep the old key; Default
// returns a Client with the new one from now on. An empty key means no
// default account.
func (p *Pool) SetDefaultAPIKey(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.defaults.APIKey = key
}

// For returns the Client of the account given by baseURL, apiKey and caPEM;
// an empty baseURL or caPEM falls back to the defaults. It fails like New,
// including for a host not in the defaults' AllowedHosts. Clients and gates
// are cached under a sha256 of the values, so the key is never held in
// clear as a map key.
func (p *Pool) For(baseURL, apiKey string, caPEM []byte) (*Client, error) {
	p.mu.Lock()
	o := p.defaults
	p.mu.Unlock()
	if baseURL != "" {
		o.BaseURL = baseURL
	}
	if len(caPEM) > 0 {
		o.CAPEM = caPEM
	}
	o.APIKey = apiKey
	o, base, err := withDefaults(o)
	if err != nil {
		return nil, err
	}
	ck := poolKey([]byte(base), []byte(apiKey), o.CAPEM)
	ak := poolKey([]byte(base), []byte(apiKey))

	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[ck]; ok {
		return c, nil
	}
	g, ok := p.gates[ak]
	if !ok {
		if len(p.gates) >= maxPooledClients {
			p.evictGateLocked()
		}
		g = newGate(o)
		p.gates[ak] = g
	}
	hk := hostKey(base)
	h, ok := p.hosts[hk]
	if !ok {
		if len(p.hosts) >= maxPooledClients {
			for old := range p.hosts {
				// Its Clients keep it; only sharing with new ones is lost.
				delete(p.hosts, old)
				break
			}
		}
		h = newHostGate(o)
		p.hosts[hk] = h
	}
	c, err := newClient(o, base, p.metrics, g, h)
	if err != nil {
		return nil, err
	}
	if len(p.clients) >= maxPooledClients {
		// Evict one arbitrary Client; its holders keep a working Client
		// sharing the account's gate, only the connections are not shared
		// with later callers.
		for old, oc := range p.clients {
			delete(p.clients, old)
			oc.CloseIdleConnections()
			break
		}
	}
	p.clients[ck] = c
	return c, nil
}

// evictGateLocked forgets one arbitrary account together with its cached
// Clients, so that no cached Client keeps a gate that a new Client of the
// same account would not share. p.mu must be held.
func (p *Pool) evictGateLocked() {
	for old, g := range p.gates {
		delete(p.gates, old)
		for k, c := range p.clients {
			if c.gate == g {
				delete(p.clients, k)
				c.CloseIdleConnections()
			}
		}
		return
	}
}

// poolKey hashes length-prefixed fields so that no two different tuples
// can collide by shifting bytes between fields.
func poolKey(fields ...[]byte) [sha256.Size]byte {
	h := sha256.New()
	for _, f := range fields {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write(f)
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// hostKey is the scheme and host (with port) of a normalized base URL.
func hostKey(base string) string {
	if u, err := url.Parse(base); err == nil {
		return u.Scheme + "://" + u.Host
	}
	return base
}
