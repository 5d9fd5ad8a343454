package serving

import (
	"crypto/tls"
	"flag"
	"slices"
	"testing"
)

func parse(t *testing.T, args ...string) Metrics {
	t.Helper()
	var m Metrics
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	m.BindFlags(fs, true)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return m
}

// nextProtos applies the options' TLS settings to a server's default
// config, as controller-runtime does, and returns what ALPN would offer.
func nextProtos(m Metrics) []string {
	cfg := &tls.Config{NextProtos: []string{"h2"}} // controller-runtime's starting point
	for _, f := range m.ServerOptions().TLSOpts {
		f(cfg)
	}
	return cfg.NextProtos
}

// TestDefaultsAreSecure: with no flags, metrics are HTTPS on :8443 behind
// the TokenReview + SubjectAccessReview filter, HTTP/1.1 only, with a
// self-signed certificate.
func TestDefaultsAreSecure(t *testing.T) {
	m := parse(t)
	o := m.ServerOptions()
	if o.BindAddress != ":8443" || !o.SecureServing || o.FilterProvider == nil {
		t.Errorf("defaults: bind %q, secure %v, filter %v; want :8443, HTTPS, authn/authz filter", o.BindAddress, o.SecureServing, o.FilterProvider != nil)
	}
	if o.CertDir != "" || o.CertName != "tls.crt" || o.KeyName != "tls.key" {
		t.Errorf("certificate defaults: %q %q %q", o.CertDir, o.CertName, o.KeyName)
	}
	if p := nextProtos(m); !slices.Equal(p, []string{"http/1.1"}) {
		t.Errorf("HTTP/2 should be off by default; ALPN offers %v", p)
	}
}

func TestFlags(t *testing.T) {
	m := parse(t, "--metrics-secure=false", "--metrics-bind-address=127.0.0.1:8080")
	if o := m.ServerOptions(); o.SecureServing || o.FilterProvider != nil || o.BindAddress != "127.0.0.1:8080" {
		t.Errorf("--metrics-secure=false should serve plain HTTP without the filter: %+v", o)
	}
	if p := nextProtos(parse(t, "--enable-http2")); !slices.Contains(p, "h2") {
		t.Errorf("--enable-http2 should keep h2; ALPN offers %v", p)
	}
	m = parse(t, "--metrics-cert-path=/certs", "--metrics-cert-name=c.pem", "--metrics-cert-key=k.pem")
	if o := m.ServerOptions(); o.CertDir != "/certs" || o.CertName != "c.pem" || o.KeyName != "k.pem" {
		t.Errorf("certificate flags not passed on: %q %q %q", o.CertDir, o.CertName, o.KeyName)
	}
}
