package manifests

// The manager's metrics endpoint, as main.go serves it (the flags and
// options of internal/serving, through a controller-runtime manager) on a
// real kube-apiserver, with the RBAC of config/ applied for real: HTTPS,
// every request authenticated (TokenReview) and authorized
// (SubjectAccessReview) by the API server, HTTP/2 off unless asked for.

import (
	"context"
	"crypto/tls"
	"flag"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/scriptlock/customer-operator/internal/serving"
)

// metricsFlags parses args as the manager's command line does and returns
// the metrics server options main.go gives the manager.
func metricsFlags(t *testing.T, args ...string) serving.Metrics {
	t.Helper()
	var m serving.Metrics
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	m.BindFlags(fs, true)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return m
}

// freeLoopbackAddr returns a loopback address whose port was free a moment
// ago.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startManager runs a controller-runtime manager with nothing in it but
// its metrics server, configured from the command line args exactly as
// main.go does, connected to the API server as cfg says. It returns the
// metrics address once it accepts connections.
func startManager(ctx context.Context, t *testing.T, cfg *rest.Config, args ...string) string {
	t.Helper()
	addr := freeLoopbackAddr(t)
	m := metricsFlags(t, append([]string{"--metrics-bind-address=" + addr}, args...)...)
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Metrics:                m.ServerOptions(),
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		t.Fatalf("creating the manager: %v", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the manager stopped with %v", err)
		}
	})
	waitFor(ctx, t, "the metrics server at "+addr, func() (bool, error) {
		conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return false, nil
		}
		conn.Close()
		return true, nil
	})
	return addr
}

// scrape GETs url with the bearer token (none if empty) over a client that,
// like the ServiceMonitor, does not verify the self-signed certificate.
func scrape(ctx context.Context, t *testing.T, url, token string) (int, string) {
	t.Helper()
	code, body, err := tryScrape(ctx, url, token)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return code, body
}

func tryScrape(ctx context.Context, url, token string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the manager's certificate is self-signed, as in config/prometheus
	}}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// alpn returns the protocol the server at addr picks when a client offers
// HTTP/2 and HTTP/1.1.
func alpn(ctx context.Context, t *testing.T, addr string) string {
	t.Helper()
	d := &tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}}} //nolint:gosec // self-signed, see scrape
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().NegotiatedProtocol
}

// serviceAccountToken creates the ServiceAccount ns/name if needed and
// returns a token of it from the TokenRequest API, as the kubelet mounts
// one into a pod.
func serviceAccountToken(ctx context.Context, t *testing.T, c client.Client, cs kubernetes.Interface, ns, name string) string {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := c.Create(ctx, sa, fieldOwner); client.IgnoreAlreadyExists(err) != nil {
		t.Fatalf("creating ServiceAccount %s/%s: %v", ns, name, err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(600))},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("a token for %s/%s: %v", ns, name, err)
	}
	return tr.Status.Token
}

// TestSecureMetricsNeedAnAuthorizedToken runs the metrics server as the
// Deployment of config/default does (the manager's default flags, as the
// manager's own ServiceAccount with only the rendered RBAC of config/ for
// it) and scrapes it: without a token, with a token the API server does not
// know, and with the token of a ServiceAccount that is not bound to
// scriptlock-metrics-reader it is refused; with the token of one that is,
// as config/prometheus's ServiceMonitor sends Prometheus' own, it gets the
// metrics. TLS only, and HTTP/1.1 only.
func TestSecureMetricsNeedAnAuthorizedToken(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	admin, c := startControlPlane(t)
	cs, err := kubernetes.NewForConfig(admin)
	if err != nil {
		t.Fatal(err)
	}

	// The rendered objects that make the manager's identity and its
	// metrics RBAC, for real.
	idx := index(render(t, "default"))
	for _, key := range []string{
		"/Namespace " + operatorNamespace,
		"/ServiceAccount " + operatorNamespace + "/scriptlock-controller-manager",
		"rbac.authorization.k8s.io/ClusterRole scriptlock-metrics-auth-role",
		"rbac.authorization.k8s.io/ClusterRoleBinding scriptlock-metrics-auth-rolebinding",
		"rbac.authorization.k8s.io/ClusterRole scriptlock-metrics-reader",
	} {
		o, ok := idx[key]
		if !ok {
			t.Fatalf("config/default does not render %s", key)
		}
		if err := apply(ctx, c, o, false); err != nil {
			t.Fatalf("applying %s: %v", key, err)
		}
	}

	// Prometheus, bound to the metrics-reader role as docs/operations.md
	// says; and a ServiceAccount that is not.
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "monitoring"}}, fieldOwner); err != nil {
		t.Fatal(err)
	}
	promToken := serviceAccountToken(ctx, t, c, cs, "monitoring", "prometheus")
	nosyToken := serviceAccountToken(ctx, t, c, cs, "monitoring", "nosy")
	if err := c.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "scriptlock-metrics-reader-prometheus"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "scriptlock-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "monitoring", Name: "prometheus"}},
	}, fieldOwner); err != nil {
		t.Fatal(err)
	}

	// The manager connects as its own ServiceAccount, which may do
	// nothing but what config/ grants it.
	managerCfg := &rest.Config{
		Host:            admin.Host,
		BearerToken:     serviceAccountToken(ctx, t, c, cs, operatorNamespace, "scriptlock-controller-manager"),
		TLSClientConfig: rest.TLSClientConfig{CAData: admin.CAData},
	}
	// The Deployment's flags, bar the address (loopback, a free port).
	addr := startManager(ctx, t, managerCfg)
	url := "https://" + addr + "/metrics"

	for _, tc := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		// The TokenReview answers with an error for a token that is no
		// JWT of the cluster's, which controller-runtime's filter turns
		// into a 500: refused all the same.
		{"a token the API server did not issue", "not-a-token", http.StatusInternalServerError},
		{"a ServiceAccount not bound to metrics-reader", nosyToken, http.StatusForbidden},
	} {
		if code, body := scrape(ctx, t, url, tc.token); code != tc.want {
			t.Errorf("%s: %d %q, want %d", tc.name, code, body, tc.want)
		} else if strings.Contains(body, "rest_client_requests_total") {
			t.Errorf("%s: refused, yet the answer holds metrics", tc.name)
		}
	}
	code, body := scrape(ctx, t, url, promToken)
	if code != http.StatusOK || !strings.Contains(body, "# TYPE rest_client_requests_total counter") {
		t.Errorf("Prometheus, bound to metrics-reader: %d, want 200 and the metrics; got\n%.500s", code, body)
	}

	// Plain HTTP on the TLS port gets no metrics.
	if code, body, err := tryScrape(ctx, "http://"+addr+"/metrics", promToken); err == nil && code == http.StatusOK {
		t.Errorf("plain HTTP to the metrics port was answered %d:\n%.300s", code, body)
	}
	if p := alpn(ctx, t, addr); p == "h2" {
		t.Error("the metrics server speaks HTTP/2 without --enable-http2")
	}
}

// TestMetricsServingModes: --enable-http2 offers HTTP/2 on the secure
// endpoint; --metrics-secure=false, as the demo and the benchmark run the
// manager (hack/localenv), serves plain HTTP to anyone.
func TestMetricsServingModes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	admin, _ := startControlPlane(t)

	t.Run("--enable-http2", func(t *testing.T) {
		addr := startManager(ctx, t, admin, "--enable-http2")
		if p := alpn(ctx, t, addr); p != "h2" {
			t.Errorf("with --enable-http2 the server picked %q, want h2", p)
		}
		if code, _ := scrape(ctx, t, "https://"+addr+"/metrics", ""); code != http.StatusUnauthorized {
			t.Errorf("without a token: %d, want 401", code)
		}
	})
	t.Run("--metrics-secure=false", func(t *testing.T) {
		addr := startManager(ctx, t, admin, "--metrics-secure=false")
		code, body := scrape(ctx, t, "http://"+addr+"/metrics", "")
		if code != http.StatusOK || !strings.Contains(body, "# TYPE rest_client_requests_total counter") {
			t.Errorf("plain HTTP without a token: %d, want 200 and the metrics", code)
		}
	})
}

// TestMetricsEndpointIsWiredThrough: the Deployment, the Service, the
// NetworkPolicy and the ServiceMonitor all agree on the HTTPS port 8443, the
// Deployment keeps --metrics-secure on, and the ServiceMonitor sends a token
// over HTTPS.
func TestMetricsEndpointIsWiredThrough(t *testing.T) {
	for _, dir := range []string{"default", "namespaced"} {
		t.Run(dir, func(t *testing.T) {
			objs := render(t, dir)
			deps := byKind(objs, "Deployment")
			if len(deps) != 1 {
				t.Fatalf("want one Deployment, got %d", len(deps))
			}
			mgr := convert[appsv1.Deployment](t, deps[0]).Spec.Template.Spec.Containers[0]
			m := metricsFlags(t, flagsOf(mgr.Args, "metrics-")...)
			if m.BindAddress != ":8443" || !m.Secure {
				t.Errorf("the manager should serve metrics securely on :8443, its args say %q (secure=%v): %v", m.BindAddress, m.Secure, mgr.Args)
			}
			if !slices.ContainsFunc(mgr.Ports, func(p corev1.ContainerPort) bool { return p.Name == "https" && p.ContainerPort == 8443 }) {
				t.Errorf("the manager container should name its port 8443 https: %v", mgr.Ports)
			}

			svcs := byKind(objs, "Service")
			if len(svcs) != 1 {
				t.Fatalf("want one Service, got %d", len(svcs))
			}
			svc := convert[corev1.Service](t, svcs[0])
			if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "https" || svc.Spec.Ports[0].Port != 8443 ||
				svc.Spec.Ports[0].TargetPort != intstr.FromString("https") {
				t.Errorf("the metrics Service should expose https 8443 to the container's https port: %+v", svc.Spec.Ports)
			}

			nps := byKind(objs, "NetworkPolicy")
			if len(nps) != 1 {
				t.Fatalf("want one NetworkPolicy, got %d", len(nps))
			}
			var ports []string
			for _, r := range convert[networkingv1.NetworkPolicy](t, nps[0]).Spec.Ingress {
				for _, p := range r.Ports {
					ports = append(ports, p.Port.String())
				}
			}
			if !slices.Equal(ports, []string{"8443"}) {
				t.Errorf("the NetworkPolicy should let in port 8443 only, it lets in %v", ports)
			}
		})
	}

	mons := byKind(render(t, "prometheus"), "ServiceMonitor")
	if len(mons) != 1 {
		t.Fatalf("config/prometheus should hold one ServiceMonitor, got %d", len(mons))
	}
	eps, _, _ := unstructured.NestedSlice(mons[0].Object, "spec", "endpoints")
	if len(eps) != 1 {
		t.Fatalf("want one endpoint, got %v", eps)
	}
	ep := eps[0].(map[string]any)
	if ep["port"] != "https" || ep["scheme"] != "https" || ep["path"] != "/metrics" ||
		ep["bearerTokenFile"] != "/var/run/secrets/kubernetes.io/serviceaccount/token" {
		t.Errorf("the ServiceMonitor should scrape port https over HTTPS with the ServiceAccount token: %v", ep)
	}
	if _, ok := ep["tlsConfig"].(map[string]any); !ok {
		t.Errorf("the ServiceMonitor has no tlsConfig (the manager's certificate is self-signed): %v", ep)
	}
}

// flagsOf returns the args that start with --prefix.
func flagsOf(args []string, prefix string) []string {
	var out []string
	for _, a := range args {
		if strings.HasPrefix(a, "--"+prefix) {
			out = append(out, a)
		}
	}
	return out
}
