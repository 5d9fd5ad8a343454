package scriptlock

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults applied by New to zero-valued Options fields.
const (
	DefaultBaseURL = "https://scriptlock.com"
	DefaultTimeout = 30 * time.Second
	DefaultQPS     = 10
	DefaultBurst   = 20
	// DefaultMaxInFlight is the default Options.MaxInFlight.
	DefaultMaxInFlight = 4
)

// MaxBodyBytes is the largest response body the client reads. A success
// answer with a larger body is refused with ErrBodyTooLarge; records are
// small, so anything bigger is a broken or hostile server.
const MaxBodyBytes = 1 << 20

// MaxListBodyBytes is the largest listing the client reads: about
// 2,000,000 records of some 130 bytes. A listing holds the whole account, so
// the record limit (MaxBodyBytes, about 8,000 records) would silently stop
// drift detection on a large account. Listings are decoded as a stream
// (ListEach), so this bounds the bytes read, not the memory used.
const MaxListBodyBytes = 256 << 20

// Route templates, used as metric labels so that ids never become label
// values (unbounded cardinality).
const (
	routeCustomer   = "/api/customer"
	routeCustomerID = "/api/customer/{id}"
	routeCustomers  = "/api/customers"
)

// Options configures a Client. The zero value of each field means "use the
// default".
type Options struct {
	// BaseURL is ScriptLock's address; default "https://scriptlock.com".
	// A path prefix is kept. Plain http:// is refused unless the host is
	// loopback or AllowInsecureHTTP is set, because the API key travels in
	// a header in clear.
	BaseURL string
	// APIKey is sent verbatim as "Authorization: Basic <APIKey>", as the
	// vendor page shows (it is not base64 of user:password).
	APIKey string
	// CAPEM, when set, replaces the system roots with these PEM certificates.
	CAPEM []byte
	// Timeout bounds one request, from sending to reading the whole body,
	// so that a black-holed server never parks a worker; default 30s.
	Timeout time.Duration
	// QPS and Burst configure the client-side rate limiter shared by all
	// callers of the account; default 10 and 20.
	QPS   float64
	Burst int
	// MaxInFlight caps the account's requests in flight at once; default
	// 4. A call beyond the cap fails at once with ErrThrottled instead of
	// waiting, so that a ScriptLock host that accepts connections and never
	// answers cannot hold every reconcile worker.
	MaxInFlight int
	// MaxInFlightPerHost caps the calls in flight to one host, across all
	// its accounts, so that many accounts at a host that never answers (a
	// tenant can name as many as it likes) hold a bounded number of
	// workers; 0 means twice MaxInFlight.
	MaxInFlightPerHost int
	// MaxInFlightFunc and MaxInFlightPerHostFunc, when set, replace
	// MaxInFlight and MaxInFlightPerHost with their value at each call (at
	// least 1): for a caller whose own concurrency changes while it runs,
	// as the manager's reconcile limit does when it is derived from the
	// rate and the answer times (controllers.Concurrency).
	MaxInFlightFunc        func() int
	MaxInFlightPerHostFunc func() int
	// MaxListBodyBytes is the largest listing body read, in bytes; a longer
	// one fails with ErrBodyTooLarge. Default (0) MaxListBodyBytes.
	MaxListBodyBytes int64
	// AllowedHosts, when not empty, is the list of hosts a base URL may
	// name; New and Pool.For refuse any other. An entry matches the URL's
	// host name case-insensitively, on any port; an entry with a port
	// ("scriptlock.example:8443") matches that port only, the scheme's
	// default port counting when the URL names none. Empty means any host.
	// The base URL can come from a tenant's Secret, and the API key is sent
	// to that host.
	AllowedHosts []string
	// AllowInsecureHTTP permits a plain http:// BaseURL on a non-loopback
	// host.
	AllowInsecureHTTP bool
	// OnWrite, when not nil, is told of every POST, PUT and DELETE sent
	// (see WriteObserver): the hook of a change log.
	OnWrite WriteObserver
	// ReadOnly makes a Client that sends GET requests only: every create,
	// update and delete fails with ErrReadOnly (wrapped in an *Error)
	// before it reaches the rate limiter or the network. For tools that
	// must never change ScriptLock (kubectl scriptlock plan).
	ReadOnly bool
	// HTTPClient replaces the built-in transport; for tests only. Its
	// redirect policy is overridden: redirects are never followed.
	HTTPClient *http.Client
}

// Client calls the ScriptLock customer API for one account. It is safe for
// concurrent use; get Clients from a Pool so that all callers of an account
// share its rate limiter, hold and in-flight cap (and connections, per CA).
type Client struct {
	baseURL string // normalized, without trailing slash
	key     string
	account string
	timeout time.Duration
	// listLimit is Options.MaxListBodyBytes.
	listLimit int64
	hc        *http.Client
	readOnly  bool
	gate      *gate // shared by every Client of the account in a Pool
	host      *gate // shared by every Client of the host in a Pool
	metrics   *metrics
	onWrite   WriteObserver
}

// New returns a Client for one account, with a rate limiter, hold and
// in-flight cap of its own. It fails on an invalid base URL, a plain-http
// URL that is not allowed, a host not in AllowedHosts, a missing or
// malformed API key, or a CAPEM without certificates.
func New(o Options) (*Client, error) {
	o, base, err := withDefaults(o)
	if err != nil {
		return nil, err
	}
	return newClient(o, base, nil, newGate(o), newHostGate(o))
}

// withDefaults checks o and fills in its zero fields; it returns the
// normalized base URL.
func withDefaults(o Options) (Options, string, error) {
	base, err := checkBaseURL(o)
	if err != nil {
		// The errors name the URL's scheme and host, and a key pasted as
		// the host is still the key: they are scrubbed of it.
		return o, "", redactError(err, o.APIKey)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.QPS <= 0 {
		o.QPS = DefaultQPS
	}
	if o.Burst <= 0 {
		o.Burst = DefaultBurst
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.MaxInFlightPerHost <= 0 {
		o.MaxInFlightPerHost = 2 * o.MaxInFlight
	}
	if o.MaxListBodyBytes <= 0 {
		o.MaxListBodyBytes = MaxListBodyBytes
	}
	return o, base, nil
}

// newClient builds a Client from options that went through withDefaults.
func newClient(o Options, base string, m *metrics, g, host *gate) (*Client, error) {
	hc, err := newHTTPClient(o)
	if err != nil {
		return nil, err
	}
	return &Client{
		baseURL:   base,
		key:       o.APIKey,
		account:   accountID(base, o.APIKey),
		timeout:   o.Timeout,
		listLimit: o.MaxListBodyBytes,
		hc:        hc,
		readOnly:  o.ReadOnly,
		gate:      g,
		host:      host,
		metrics:   m,
		onWrite:   o.OnWrite,
	}, nil
}

// Account returns a stable, non-secret identifier of the account (base URL
// and key): the first 12 hex digits of sha256(url + "\x00" + key). It is safe
// to log and to use as a map key.
func (c *Client) Account() string { return c.account }

// KeyID returns a stable, non-secret identifier of the API key alone: the
// first 12 hex digits of sha256("key\x00" + key). One key is one account,
// whatever URL spelling reaches it.
func (c *Client) KeyID() string {
	sum := sha256.Sum256([]byte("key\x00" + c.key))
	return hex.EncodeToString(sum[:])[:12]
}

// ReadOnly says whether the Client refuses every write (Options.ReadOnly).
func (c *Client) ReadOnly() bool { return c.readOnly }

// BaseURL returns the normalized base URL the client calls (no trailing
// slash; it carries no credentials).
func (c *Client) BaseURL() string { return c.baseURL }

// AccountID is the account fingerprint (Client.Account) of key at baseURL:
// the first 12 hex digits of sha256(normalized base URL + NUL + key). It
// names an account without revealing its key. An invalid baseURL is
// fingerprinted as given.
func AccountID(baseURL, key string) string {
	base, err := normalizeBaseURL(baseURL, true)
	if err != nil {
		base = baseURL
	}
	return accountID(base, key)
}

func accountID(base, key string) string {
	sum := sha256.Sum256([]byte(base + "\x00" + key))
	return hex.EncodeToString(sum[:])[:12]
}

func validateKey(key string) error {
	if key == "" {
		return errors.New("scriptlock: no API key")
	}
	for i := 0; i < len(key); i++ {
		// A control character would be refused by net/http at send time,
		// or worse, split the header; fail early and without echoing it.
		if key[i] < 0x20 || key[i] == 0x7f {
			return errors.New("scriptlock: API key contains a control character")
		}
	}
	if strings.TrimSpace(key) != key {
		return errors.New("scriptlock: API key has leading or trailing spaces")
	}
	return nil
}

// CloseIdleConnections releases pooled connections, for example when the
// account's credentials were rotated away.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// Get fetches one record. ScriptLock answers 302 Found with the record in
// the body; the redirect is never followed. 404 is reported as an Error for
// which IsNotFound is true.
func (c *Client) Get(ctx context.Context, id string) (Customer, error) {
	const op = "get"
	if err := validateID(id); err != nil {
		return Customer{}, invalid(op, err)
	}
	r, err := c.do(ctx, op, http.MethodGet, routeCustomerID, "/api/customer/"+url.PathEscape(id), "")
	if err != nil {
		return Customer{}, err
	}
	switch r.status {
	case http.StatusFound:
		if r.tooLarge {
			return Customer{}, r.fail(op, ErrBodyTooLarge)
		}
		out, err := decodeRecord(r.body)
		if err != nil {
			return Customer{}, r.fail(op, err)
		}
		if out.ID == "" {
			out.ID = id
		}
		if out.ID != id {
			return Customer{}, r.fail(op, fmt.Errorf("%w: asked for customer %q, got %q", ErrMalformedBody, id, out.ID))
		}
		return out, nil
	case http.StatusNotFound:
		return Customer{}, c.statusError(op, r, nil)
	}
	return Customer{}, c.statusError(op, r, ErrUnexpectedStatus)
}

// Create adds a record (in.ID is ignored) and returns it with its new id,
// taken from the JSON body, else from the Location header. 409 (email
// already used) is an Error for which IsConflict is true. When the answer
// is lost (no answer, 5xx) or is a success other than 201 (200, 202, 204,
// 302, ...: ErrUnexpectedStatus), IsMaybeCreated is true: the record may
// exist. Any 4xx means nothing was created (IsRefused).
func (c *Client) Create(ctx context.Context, in Customer) (Customer, error) {
	return c.CreateAfter(ctx, in, nil)
}

// CreateAfter is Create, calling prepare (when not nil) once the call is
// admitted (the account's rate limit, in-flight caps and holds) and right
// before it is sent. An error from prepare is returned as it is, and nothing
// is sent; so the caller can persist what it must before a create (a proof
// of it) without persisting it for a create the client then holds back.
func (c *Client) CreateAfter(ctx context.Context, in Customer, prepare func(context.Context) error) (out Customer, err error) {
	const op = "create"
	ctx, done := c.beginWrite(ctx, op, http.MethodPost)
	defer func() { done(out.ID, WriteCreated, err) }()
	r, err := c.send(ctx, op, http.MethodPost, routeCustomer, "/api/customer", formBody(in), prepare, nil)
	if err != nil {
		return Customer{}, err
	}
	switch r.status {
	case http.StatusCreated:
		return createdRecord(op, r, in)
	case http.StatusConflict:
		return Customer{}, c.statusError(op, r, nil)
	}
	return Customer{}, c.statusError(op, r, ErrUnexpectedStatus)
}

func createdRecord(op string, r *response, in Customer) (Customer, error) {
	var (
		out    Customer
		decErr error
	)
	switch {
	case r.tooLarge:
		decErr = ErrBodyTooLarge
	case len(bytes.TrimSpace(r.body)) > 0:
		out, decErr = decodeRecord(r.body)
	}
	locID := idFromLocation(r.header.Get("Location"))
	if out.ID == "" {
		out.ID = locID
	}
	if out.ID == "" {
		if decErr == nil {
			decErr = ErrNoID
		} else {
			decErr = fmt.Errorf("%w: %w", ErrNoID, decErr)
		}
		return Customer{}, r.fail(op, decErr)
	}
	// A body that is absent or partial still means "created": what
	// ScriptLock did not echo is what we sent.
	if out.Company == "" {
		out.Company = in.Company
	}
	if out.FirstName == "" {
		out.FirstName = in.FirstName
	}
	if out.LastName == "" {
		out.LastName = in.LastName
	}
	if out.Email == "" {
		out.Email = in.Email
	}
	return out, nil
}

// idFromLocation returns the id in a Location of the form
// [scheme://host]/.../api/customer/{id}, or "" if there is none.
func idFromLocation(loc string) string {
	if loc == "" {
		return ""
	}
	u, err := url.Parse(loc)
	if err != nil {
		return ""
	}
	const marker = "/api/customer/"
	p := u.EscapedPath()
	i := strings.LastIndex(p, marker)
	if i < 0 {
		return ""
	}
	seg := strings.TrimSuffix(p[i+len(marker):], "/")
	if strings.Contains(seg, "/") {
		return ""
	}
	id, err := url.PathUnescape(seg)
	if err != nil || validateID(id) != nil {
		return ""
	}
	return id
}

// Update replaces the record's fields. It returns changed=true on 200 OK and
// changed=false on 304 Not Modified (nothing to change, also a success). 404
// and 409 (email used by another record) are Errors.
func (c *Client) Update(ctx context.Context, id string, in Customer) (changed bool, err error) {
	const op = "update"
	if err := validateID(id); err != nil {
		return false, invalid(op, err)
	}
	ctx, done := c.beginWrite(ctx, op, http.MethodPut)
	defer func() {
		ok := WriteUpdated
		if !changed {
			ok = WriteUnchanged
		}
		done(id, ok, err)
	}()
	r, err := c.do(ctx, op, http.MethodPut, routeCustomerID, "/api/customer/"+url.PathEscape(id), formBody(in))
	if err != nil {
		return false, err
	}
	switch r.status {
	case http.StatusOK:
		return true, nil
	case http.StatusNotModified:
		return false, nil
	case http.StatusNotFound, http.StatusConflict:
		return false, c.statusError(op, r, nil)
	}
	return false, c.statusError(op, r, ErrUnexpectedStatus)
}

// List returns every record of the account (see ListEach), as one slice.
func (c *Client) List(ctx context.Context) ([]Customer, error) {
	list := []Customer{}
	err := c.ListEach(ctx, func(rec Customer) { list = append(list, rec) })
	if err != nil {
		return nil, err
	}
	return list, nil
}

// ListEach calls fn with every record of the account, in the listing's
// order, decoding the answer as a stream: the memory it needs is one record,
// not the listing (which holds the whole account, maybe hundreds of
// thousands of records). ScriptLock answers 200 with a JSON array, or 204 No
// Content for an empty list. A record without a usable id (absent, null,
// empty, or one that could not be placed in a URL) cannot be addressed: it
// is left out and counted in scriptlock_list_records_skipped_total rather
// than failing the listing. When ListEach returns an error, fn may already
// have seen some records: the caller must discard them.
func (c *Client) ListEach(ctx context.Context, fn func(Customer)) error {
	const op = "list"
	skipped := 0
	r, err := c.send(ctx, op, http.MethodGet, routeCustomers, "/api/customers", "", nil, func(body io.Reader) error {
		var err error
		skipped, err = decodeListStream(body, fn)
		return err
	})
	if err != nil {
		return err
	}
	switch r.status {
	case http.StatusOK:
		if r.streamErr != nil {
			return r.fail(op, r.streamErr)
		}
		c.metrics.skippedRecords(skipped)
		return nil
	case http.StatusNoContent:
		return nil
	}
	return c.statusError(op, r, ErrUnexpectedStatus)
}

// Delete removes a record; ScriptLock revokes all of its licenses. 410 Gone
// returns (false, nil); 404 returns (true, nil) because the record is
// already gone, which is what the caller wanted. 409 means ScriptLock
// refused: the Error's Message carries its explanation.
func (c *Client) Delete(ctx context.Context, id string) (alreadyGone bool, err error) {
	const op = "delete"
	if err := validateID(id); err != nil {
		return false, invalid(op, err)
	}
	ctx, done := c.beginWrite(ctx, op, http.MethodDelete)
	defer func() {
		ok := WriteDeleted
		if alreadyGone {
			ok = WriteAlreadyGone
		}
		done(id, ok, err)
	}()
	r, err := c.do(ctx, op, http.MethodDelete, routeCustomerID, "/api/customer/"+url.PathEscape(id), "")
	if err != nil {
		return false, err
	}
	switch r.status {
	case http.StatusGone:
		return false, nil
	case http.StatusNotFound:
		return true, nil
	case http.StatusConflict:
		return false, c.statusError(op, r, nil)
	}
	return false, c.statusError(op, r, ErrUnexpectedStatus)
}

func invalid(op string, err error) *Error {
	return &Error{Op: op, Err: fmt.Errorf("%w: %w", ErrInvalidArgument, err)}
}
