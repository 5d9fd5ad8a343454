package scriptlock

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// maxPooledClients bounds the cache: every rotated key adds an account, and
// an operator running for months must not grow without limit.
const maxPooledClients = 256

// Pool hands out one Client per account (base URL + key + CA), so that all
// callers of one account share the http.Client, its connections and the
// rate limiter. It is safe for concurrent use.
type Pool struct {
	defaults Options
	metrics  *metrics

	mu      sync.Mutex
	clients map[[sha256.Size]byte]*Client
}

// NewPool returns a Pool whose accounts inherit defaults (timeout, QPS,
// burst, CA, base URL, AllowInsecureHTTP). Metrics are registered on reg,
// which may be nil; registering twice on the same reg is safe.
func NewPool(defaults Options, reg prometheus.Registerer) *Pool {
	return &Pool{
		defaults: defaults,
		metrics:  newMetrics(reg),
		clients:  map[[sha256.Size]byte]*Client{},
	}
}

// Default returns the Client of the default account. It fails if the
// defaults carry no API key.
func (p *Pool) Default() (*Client, error) {
	if p.defaults.APIKey == "" {
		return nil, errors.New("scriptlock: no default API key configured")
	}
	return p.For("", p.defaults.APIKey, nil)
}

// For returns the Client of the account given by baseURL, apiKey and caPEM;
// an empty baseURL or caPEM falls back to the defaults. Clients are cached
// under a sha256 of the three values, so the key is never held in clear as a
// map key.
func (p *Pool) For(baseURL, apiKey string, caPEM []byte) (*Client, error) {
	o := p.defaults
	if baseURL != "" {
		o.BaseURL = baseURL
	}
	if len(caPEM) > 0 {
		o.CAPEM = caPEM
	}
	o.APIKey = apiKey
	base, err := normalizeBaseURL(o.BaseURL, o.AllowInsecureHTTP)
	if err != nil {
		return nil, err
	}
	o.BaseURL = base
	k := poolKey(base, apiKey, o.CAPEM)

	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[k]; ok {
		return c, nil
	}
	c, err := newClient(o, p.metrics)
	if err != nil {
		return nil, err
	}
	if len(p.clients) >= maxPooledClients {
		// Evict one arbitrary account; its holders keep a working Client,
		// only sharing with later callers is lost.
		for old, oc := range p.clients {
			delete(p.clients, old)
			oc.CloseIdleConnections()
			break
		}
	}
	p.clients[k] = c
	return c, nil
}

// poolKey hashes length-prefixed fields so that no two different triples
// can collide by shifting bytes between fields.
func poolKey(base, key string, ca []byte) [sha256.Size]byte {
	h := sha256.New()
	for _, f := range [][]byte{[]byte(base), []byte(key), ca} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write(f)
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}
