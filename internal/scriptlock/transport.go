package scriptlock

// The transport of the REST client: which base URLs and hosts it may call,
// the HTTP client (no redirects followed, timeouts, TLS), and sending one
// request under the account's and the host's gates, with the limits on
// what is read back. client.go has the five calls of the vendor's API.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
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

// checkBaseURL checks the base URL, allowed host and key of o, and returns
// the normalized base URL. A URL that holds the key in any spelling is
// refused: the base URL is shown in status.url and in messages, and only
// the key is kept out of them.
func checkBaseURL(o Options) (string, error) {
	base, err := normalizeBaseURL(o.BaseURL, o.AllowInsecureHTTP)
	if err != nil {
		return "", err
	}
	if err := checkAllowedHost(base, o.AllowedHosts); err != nil {
		return "", err
	}
	if err := validateKey(o.APIKey); err != nil {
		return "", err
	}
	if holdsKey(o.BaseURL, o.APIKey) || holdsKey(base, o.APIKey) {
		return "", fmt.Errorf("scriptlock: base URL %q holds the API key: the key belongs in the credentials Secret's apiKey (or --scriptlock-api-key-file) only, never in the URL, which is shown in status and logs", SafeURL(base))
	}
	return base, nil
}

// normalizeBaseURL checks the base URL and returns it without a trailing
// slash, so that equal accounts hash equally. Its errors name the URL by
// scheme and host only (SafeURL): a secret pasted into the userinfo, path,
// query or fragment stays out of them.
func normalizeBaseURL(raw string, allowInsecure bool) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		raw = DefaultBaseURL
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", parseError(err)
	}
	shown := schemeHost(u)
	switch {
	case u.User != nil:
		// Credentials in the URL would end up in logs and error strings.
		return "", fmt.Errorf("scriptlock: base URL %q must not carry credentials (user:password@): the API key belongs in the credentials Secret's apiKey (or --scriptlock-api-key-file), never in the URL", shown)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return "", fmt.Errorf("scriptlock: base URL %q must not have a query or fragment", shown)
	case u.Scheme != "https" && u.Scheme != "http":
		return "", fmt.Errorf("scriptlock: base URL %q: scheme must be https (or http on loopback)", shown)
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("scriptlock: base URL %q has no host", shown)
	case u.Scheme == "http" && !allowInsecure && !isLoopbackHost(u.Hostname()):
		return "", fmt.Errorf("scriptlock: base URL %q: plain http is only allowed to a loopback host (the API key would travel in clear); use https or set AllowInsecureHTTP", shown)
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
		return parseError(err)
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
// arrives, at most Options.MaxListBodyBytes of it, instead of being read whole, and
// stream's error lands in response.streamErr.
func (c *Client) send(ctx context.Context, op, method, route, path, form string, prepare func(context.Context) error, stream func(io.Reader) error) (*response, error) {
	if c.readOnly && method != http.MethodGet {
		return nil, &Error{Op: op, Err: ErrReadOnly}
	}
	if err := c.gate.admit(ctx, op); err != nil {
		markTurnedAway(ctx)
		return nil, err
	}
	if err := c.host.admit(ctx, op); err != nil {
		c.gate.done(uncounted)
		markTurnedAway(ctx)
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

	trace := traceOf(caller)
	if trace != nil {
		trace.sent = true
	}
	start := time.Now()
	defer func() { addAnswerTime(caller, time.Since(start)) }()
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
	if trace != nil {
		trace.status = resp.StatusCode
	}
	defer func() { _ = resp.Body.Close() }()
	if stream != nil && resp.StatusCode == http.StatusOK {
		body := &countingReader{r: io.LimitReader(resp.Body, c.listLimit+1)}
		serr := stream(body)
		c.metrics.observe(method, route, resp.StatusCode, time.Since(start))
		switch {
		case body.n > c.listLimit:
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
