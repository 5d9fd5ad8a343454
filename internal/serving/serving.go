// Package serving says how the manager serves its metrics: the
// --metrics-* and --enable-http2 flags and the controller-runtime metrics
// server options they make. main.go and the tests share it, so that the
// tests run the metrics server exactly as the manager does.
//
// By default, as kubebuilder scaffolds it: HTTPS on :8443, every request
// authenticated with a TokenReview and authorized with a
// SubjectAccessReview (`get` on the non-resource URL /metrics) by the
// Kubernetes API server, HTTP/2 off. --metrics-secure=false serves plain
// HTTP with no authentication, for local runs on loopback (make run, the
// demo, the benchmark).
package serving

import (
	"crypto/tls"
	"flag"

	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// Defaults of the flags.
const (
	DefaultMetricsBindAddress = ":8443"
	DefaultCertName           = "tls.crt"
	DefaultKeyName            = "tls.key"
)

// Metrics is what the metrics flags say.
type Metrics struct {
	// BindAddress is --metrics-bind-address; "0" disables the endpoint.
	BindAddress string
	// Secure is --metrics-secure: HTTPS with authentication and
	// authorization by the API server; false is plain HTTP for anyone.
	Secure bool
	// EnableHTTP2 is --enable-http2. HTTP/2 stays off by default
	// (CVE-2023-44487 and CVE-2023-39325, HTTP/2 Rapid Reset and stream
	// cancellation), as kubebuilder scaffolds.
	EnableHTTP2 bool
	// CertDir, CertName and KeyName are --metrics-cert-path,
	// --metrics-cert-name and --metrics-cert-key: a serving certificate
	// (for instance from cert-manager), reloaded when it changes. Without
	// one, the server makes itself a self-signed certificate at start.
	CertDir, CertName, KeyName string
}

// BindFlags registers the metrics flags, with their defaults, on fs; secure
// is the default of --metrics-secure.
func (m *Metrics) BindFlags(fs *flag.FlagSet, secure bool) {
	fs.StringVar(&m.BindAddress, "metrics-bind-address", DefaultMetricsBindAddress,
		"Address of the metrics endpoint (HTTPS unless --metrics-secure=false); 0 disables it.")
	fs.BoolVar(&m.Secure, "metrics-secure", secure,
		"Serve metrics over HTTPS, to clients whose bearer token the Kubernetes API server authenticates (TokenReview) and authorizes for GET /metrics (SubjectAccessReview; the ClusterRole metrics-reader grants it). false serves plain HTTP to anyone: for local runs on loopback only.")
	fs.BoolVar(&m.EnableHTTP2, "enable-http2", false,
		"Offer HTTP/2 on the metrics server; off by default because of the HTTP/2 Rapid Reset and stream cancellation vulnerabilities (CVE-2023-44487, CVE-2023-39325).")
	fs.StringVar(&m.CertDir, "metrics-cert-path", "",
		"Directory of the metrics server's certificate and key (reloaded when they change); empty means a self-signed certificate made at start.")
	fs.StringVar(&m.CertName, "metrics-cert-name", DefaultCertName, "File name of the metrics server's certificate in --metrics-cert-path.")
	fs.StringVar(&m.KeyName, "metrics-cert-key", DefaultKeyName, "File name of the metrics server's key in --metrics-cert-path.")
}

// ServerOptions are the controller-runtime metrics server options for m:
// what ctrl.Options.Metrics gets.
func (m Metrics) ServerOptions() metricsserver.Options {
	opts := metricsserver.Options{
		BindAddress:   m.BindAddress,
		SecureServing: m.Secure,
		CertDir:       m.CertDir,
		CertName:      m.CertName,
		KeyName:       m.KeyName,
	}
	if !m.EnableHTTP2 {
		opts.TLSOpts = append(opts.TLSOpts, DisableHTTP2)
	}
	if m.Secure {
		// TokenReview + SubjectAccessReview: the manager's ServiceAccount
		// needs create on both (config/rbac/metrics_auth_role.yaml).
		opts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	return opts
}

// DisableHTTP2 makes a TLS server offer HTTP/1.1 only.
func DisableHTTP2(c *tls.Config) {
	c.NextProtos = []string{"http/1.1"}
}
