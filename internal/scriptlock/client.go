package scriptlock

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/scriptlock/customer-operator/internal/version"
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
	hc      *http.Client
	gate    *gate // shared by every Client of the account in a Pool
	host    *gate // shared by every Client of the host in a Pool
	metrics *metrics
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
	base, err := normalizeBaseURL(o.BaseURL, o.AllowInsecureHTTP)
	if err != nil {
		return o, "", err
	}
	if err := checkAllowedHost(base, o.AllowedHosts); err != nil {
		return o, "", err
	}
	if err := validateKey(o.APIKey); err != nil {
		return o, "", err
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
	return o, base, nil
}

// newClient builds a Client from options that went through withDefaults.
func newClient(o Options, base string, m *metrics, g, host *gate) (*Client, error) {
	hc, err := newHTTPClient(o)
	if err != nil {
		return nil, err
	}
	return &Client{
		baseURL: base,
		key:     o.APIKey,
		account: accountID(base, o.APIKey),
		timeout: o.Timeout,
		hc:      hc,
		gate:    g,
		host:    host,
		metrics: m,
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

// BaseURL returns the normalized base URL the client calls (no trailing
// slash; it carries no credentials).
func (c *Client) BaseURL() string { return c.baseURL }

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

// normalizeBaseURL checks the base URL and returns it without a trailing
// slash, so that equal accounts hash equally.
func normalizeBaseURL(raw string, allowInsecure bool) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		raw = DefaultBaseURL
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("scriptlock: invalid base URL: %w", err)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return "", fmt.Errorf("scriptlock: base URL %q: scheme must be https (or http on loopback)", u.Redacted())
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("scriptlock: base URL %q has no host", u.Redacted())
	case u.User != nil:
		// Credentials in the URL would end up in logs and error strings.
		return "", fmt.Errorf("scriptlock: base URL %q must not contain credentials", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return "", fmt.Errorf("scriptlock: base URL %q must not have a query or fragment", u.Redacted())
	case u.Scheme == "http" && !allowInsecure && !isLoopbackHost(u.Hostname()):
		return "", fmt.Errorf("scriptlock: base URL %q: plain http is only allowed to a loopback host (the API key would travel in clear); use https or set AllowInsecureHTTP", u.Redacted())
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Host = strings.ToLower(u.Host)
	return strings.TrimRight(u.String(), "/"), nil
}

// checkAllowedHost refuses a normalized base URL whose host is not in
// allowed (see Options.AllowedHosts). The error names the host, never the
// key.
func checkAllowedHost(base string, allowed []string) error {
	if len(allowed) == 0 {
		return nil
	}
	u, err := url.Parse(base)
	if err != nil {
		return fmt.Errorf("scriptlock: invalid base URL: %w", err)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	for _, entry := range allowed {
		entry = strings.TrimSpace(entry)
		h, p, err := net.SplitHostPort(entry)
		if err != nil {
			// No port (or an IPv6 address without brackets): any port.
			h, p = strings.TrimSuffix(strings.TrimPrefix(entry, "["), "]"), ""
		}
		if h != "" && strings.EqualFold(h, host) && (p == "" || p == port) {
			return nil
		}
	}
	return fmt.Errorf("scriptlock: ScriptLock host %q is not allowed; add it to --allowed-scriptlock-hosts to use it", u.Host)
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func refuseRedirect(*http.Request, []*http.Request) error {
	// GET answers 302 with the record in the body; following the Location
	// would lose the body and could carry the key to another host.
	return http.ErrUseLastResponse
}

func newHTTPClient(o Options) (*http.Client, error) {
	if o.HTTPClient != nil {
		hc := *o.HTTPClient
		hc.CheckRedirect = refuseRedirect
		return &hc, nil
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(o.CAPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(o.CAPEM) {
			return nil, errors.New("scriptlock: CA bundle contains no PEM certificate")
		}
		tlsCfg.RootCAs = pool
	}
	dialTimeout := min(10*time.Second, o.Timeout)
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   dialTimeout,
		ResponseHeaderTimeout: o.Timeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   16,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{Transport: tr, Timeout: o.Timeout, CheckRedirect: refuseRedirect}, nil
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
func (c *Client) CreateAfter(ctx context.Context, in Customer, prepare func(context.Context) error) (Customer, error) {
	const op = "create"
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

// response is a fully read HTTP answer.
type response struct {
	status   int
	header   http.Header
	body     []byte // at most MaxBodyBytes; nil when streamed
	tooLarge bool   // the body was longer than that
	// streamErr is what the stream consumer said of a streamed 200 body
	// (ErrBodyTooLarge past MaxListBodyBytes).
	streamErr error
}

// fail builds an Error for a success status whose body was unusable.
func (r *response) fail(op string, err error) *Error {
	return &Error{Op: op, StatusCode: r.status, Err: err}
}

// statusError builds an Error for an error answer, with ScriptLock's
// message (scrubbed of the key) and its Retry-After.
func (c *Client) statusError(op string, r *response, kind error) *Error {
	e := &Error{Op: op, StatusCode: r.status, Err: kind}
	body := r.body
	if c.key != "" {
		body = bytes.ReplaceAll(body, []byte(c.key), []byte("[redacted]"))
	}
	text := extractMessage(body)
	if c.key != "" {
		// A key hidden by JSON escaping is not caught above; it is whole
		// again here, before the message is cut to its limit (a cut could
		// otherwise leave a prefix of the key that no scrub would match).
		text = strings.ReplaceAll(text, c.key, "[redacted]")
	}
	e.Message = cleanMessage(text)
	if d, ok := parseRetryAfter(r.header.Get("Retry-After"), c.gate.now()); ok {
		e.RetryAfter = d
	}
	return e
}

// do sends one request and reads the whole answer under the per-request
// timeout. It returns an *Error when no answer could be obtained.
func (c *Client) do(ctx context.Context, op, method, route, path, form string) (*response, error) {
	return c.send(ctx, op, method, route, path, form, nil, nil)
}

// send is do, with two hooks: prepare (when not nil) runs once the call is
// admitted and before it is sent, and its error is returned as it is with
// nothing sent; a 200 answer's body is given to stream (when not nil) as it
// arrives, at most MaxListBodyBytes of it, instead of being read whole, and
// stream's error lands in response.streamErr.
func (c *Client) send(ctx context.Context, op, method, route, path, form string, prepare func(context.Context) error, stream func(io.Reader) error) (*response, error) {
	if err := c.gate.admit(ctx, op); err != nil {
		return nil, err
	}
	if err := c.host.admit(ctx, op); err != nil {
		c.gate.done(uncounted)
		return nil, err
	}
	caller := ctx
	out := uncounted
	defer func() { c.host.done(out); c.gate.done(out) }()
	if prepare != nil {
		if err := prepare(ctx); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	var body io.Reader
	if form != "" || method == http.MethodPost || method == http.MethodPut {
		body = strings.NewReader(form)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, body)
	if err != nil {
		return nil, invalid(op, err)
	}
	req.Header.Set("Authorization", "Basic "+c.key)
	req.Header.Set("User-Agent", "scriptlock-customer-operator/"+version.Version)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}

	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.metrics.observe(method, route, 0, time.Since(start))
		if caller.Err() == nil {
			// Not the caller's cancellation or deadline: the server did
			// not answer within our timeout, or could not be reached.
			out = noAnswer
		}
		return nil, &Error{Op: op, Err: transportError(err)}
	}
	out = answered
	defer func() { _ = resp.Body.Close() }()
	if stream != nil && resp.StatusCode == http.StatusOK {
		body := &countingReader{r: io.LimitReader(resp.Body, MaxListBodyBytes+1)}
		serr := stream(body)
		c.metrics.observe(method, route, resp.StatusCode, time.Since(start))
		switch {
		case body.n > MaxListBodyBytes:
			serr = ErrBodyTooLarge
		case serr != nil && body.err != nil:
			// The stream broke off (a timeout, a reset): no answer, not a
			// malformed one.
			return nil, &Error{Op: op, StatusCode: resp.StatusCode, Err: transportError(body.err)}
		}
		return &response{status: resp.StatusCode, header: resp.Header, streamErr: serr}, nil
	}
	limit := MaxBodyBytes
	data, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	c.metrics.observe(method, route, resp.StatusCode, time.Since(start))
	r := &response{status: resp.StatusCode, header: resp.Header, body: data}
	if err != nil {
		return nil, &Error{Op: op, StatusCode: resp.StatusCode, Err: transportError(err)}
	}
	if len(data) > limit {
		r.body, r.tooLarge = data[:limit], true
	}
	if r.status == http.StatusTooManyRequests || r.status >= 500 {
		// Every caller of the account waits, not just this one.
		if d, ok := parseRetryAfter(r.header.Get("Retry-After"), c.gate.now()); ok {
			c.gate.holdFor(d)
		}
	}
	return r, nil
}

// countingReader counts the bytes read through it and keeps the first
// read error other than io.EOF.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

// transportError classifies a failure to obtain a complete answer.
func transportError(err error) error {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return fmt.Errorf("%w: %w", ErrNetwork, err)
}

func statusLabel(code int) string {
	if code == 0 {
		return "error"
	}
	return strconv.Itoa(code)
}
