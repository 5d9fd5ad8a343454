//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensingv1alpha1 "github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/test/kustomized"
)

// TestOperatorOnARealNode installs config/e2e on the node and proves, in
// order, what only a real Pod shows. The steps share one installation, so
// each runs only if the ones before it passed.
func TestOperatorOnARealNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	k := connect(t)
	logCtx, stopLogs := context.WithCancel(ctx)
	k.logs = &logCollector{ctx: logCtx, started: map[types.UID]string{}}
	defer func() { stopLogs(); k.logs.wg.Wait() }()
	defer k.dumpEvents(ctx, t)

	objs, err := kustomized.Build(kustomized.RepoRoot() + "/config/e2e")
	if err != nil {
		t.Fatal(err)
	}
	deployment, secret := rendered(t, objs)
	sim := startSimulator(ctx, t, k.artifacts, secret["url"], secret["apiKey"])
	t.Logf("simulator at %s; logs in %s", sim.url, k.artifacts)

	var warnings map[string][]string
	var lastProblems []string
	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"install: the shipped manifests apply, and hostNetwork is the only Pod Security violation", func(t *testing.T) {
			warnings = k.apply(ctx, t, objs)
			checkPodSecurityWarnings(ctx, t, k, warnings, deployment)
		}},
		{"the Deployment becomes Available with 0 restarts and passes its probes", func(t *testing.T) {
			start := time.Now()
			pods := k.waitAvailable(ctx, t, deploymentName, 3*time.Minute)
			t.Logf("Available %s after apply", time.Since(start).Round(time.Second))
			for _, p := range pods {
				k.followLogs(p)
				if s := managerStatus(&p); s == nil || s.RestartCount != 0 || !s.Ready {
					t.Fatalf("pod %s: %s", p.Name, describePods([]corev1.Pod{p}))
				}
			}
			checkProbes(ctx, t, k, deployment, pods[0])
		}},
		{"the container runs as 65532 with a read-only root and no capabilities (as the kernel sees it)", func(t *testing.T) {
			pod := k.waitAvailable(ctx, t, deploymentName, time.Minute)[0]
			id := strings.TrimPrefix(managerStatus(&pod).ContainerID, "containerd://")
			pids, err := containerProcs(id)
			if err != nil {
				t.Fatal(err)
			}
			for _, pid := range pids {
				f, err := readProc(pid)
				if err != nil {
					t.Fatalf("pid %d: %v", pid, err)
				}
				if f.exe != "/manager" {
					t.Errorf("pid %d runs %s, want /manager", pid, f.exe)
				}
				for _, bad := range f.check("65532", "65532") {
					t.Errorf("pid %d: %s", pid, bad)
				}
				t.Logf("pid %d: %s uid=%v gid=%v groups=%q CapEff=%s NoNewPrivs=%s Seccomp=%s root=%s write=%v",
					pid, f.exe, f.uids, f.gids, f.groups, f.caps["CapEff"], f.noNewPrivs, f.seccomp, f.rootMount, f.rootWrite)
			}
		}},
		{"the metrics endpoint answers as shipped: HTTPS, a token with metrics-reader only", func(t *testing.T) {
			checkMetrics(ctx, t, k, deployment)
		}},
		{"the sample Customer becomes Ready at ScriptLock, and deleting it DELETEs the record", func(t *testing.T) {
			checkSample(ctx, t, k, sim)
		}},
		{"the key as a mounted file: a rotated Secret reaches the manager, Ready stays True, no restart", func(t *testing.T) {
			checkKeyRotation(ctx, t, k, sim, secret["apiKey"])
		}},
		{"two managers: deleting the leader's Pod during a storm of 100 creates hands the lease over; 100 records, none twice, all Ready", func(t *testing.T) {
			checkFailover(ctx, t, k, sim)
		}},
		{"no manager was ever refused by RBAC, nor restarted", func(t *testing.T) {
			// A log is read while it is written: give the last Pod's a moment.
			eventually(t, 30*time.Second, time.Second, "every manager's log collected", func() (bool, string) {
				for name, log := range k.allLogs() {
					if !strings.Contains(log, "starting manager") {
						return false, fmt.Sprintf("%s: %d bytes, no start-up line", name, len(log))
					}
				}
				return true, ""
			})
			// What fails this step is said once more after the managers'
			// logs, which a failure prints: a CI that shows only the end of
			// the output still shows why.
			problem := func(format string, args ...any) {
				msg := fmt.Sprintf(format, args...)
				t.Error(msg)
				lastProblems = append(lastProblems, msg)
			}
			for name, log := range k.allLogs() {
				for _, line := range strings.Split(log, "\n") {
					if strings.Contains(strings.ToLower(line), "forbidden") {
						problem("%s: %s", name, line)
					}
				}
			}
			// Nor did the kubelet or the scheduler warn about a manager Pod
			// (a failed mount or sandbox, a back-off, a failed probe), apart
			// from what the host network forces: a readiness probe that ran
			// before the manager listened (or while a deleted Pod stopped:
			// "failed" or "errored"), and a replacement Pod waiting
			// for its predecessor's host ports. (The endpoint controllers'
			// warnings about the metrics Service are the same cause: a
			// host-network Pod's address here is 127.0.0.1, which no
			// Endpoints may hold.) Also allowed: the kubelet's first try to
			// mount the token volume in a namespace made seconds before,
			// whose kube-root-ca.crt it had not seen yet ("failed to sync
			// configmap cache", or "not registered" when the kubelet has not
			// registered the Pod's objects yet: kubeletNotYetSynced; it
			// retries, and the Pod still started with 0 restarts, as checked
			// above), and
			// for the same reason its first tries to mount the credentials
			// Secret, applied before the Deployment (a fresh clone's CI saw
			// one such "not found", 2026-12-07); a Secret really missing
			// keeps the Pod from starting, which the steps above fail on.
			var events corev1.EventList
			if err := k.c.List(ctx, &events, client.InNamespace(operatorNS)); err != nil {
				t.Fatal(err)
			}
			for _, e := range events.Items {
				forced := e.Reason == "Unhealthy" && strings.HasPrefix(e.Message, "Readiness probe ") ||
					e.Reason == "FailedScheduling" && strings.Contains(e.Message, "didn't have free ports for the requested pod ports") ||
					e.Reason == "FailedMount" && strings.Contains(e.Message, `volume "kube-api-access-`) && kubeletNotYetSynced(e.Message) ||
					e.Reason == "FailedMount" && strings.Contains(e.Message, `volume "credentials"`) && (strings.Contains(e.Message, `secret "scriptlock-credentials" not found`) || kubeletNotYetSynced(e.Message)) && e.Count <= 3
				if e.Type == corev1.EventTypeWarning && e.InvolvedObject.Kind == "Pod" && !forced {
					problem("warning event for Pod %s: %s: %s (x%d)", e.InvolvedObject.Name, e.Reason, e.Message, e.Count)
				}
			}
			for _, name := range []string{deploymentName, standbyName} {
				for _, p := range k.managerPods(ctx, t, name) {
					if s := managerStatus(&p); s == nil || s.RestartCount != 0 {
						problem("pod %s restarted: %s", p.Name, describePods([]corev1.Pod{p}))
					}
				}
			}
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			for name, log := range k.allLogs() {
				t.Logf("--- %s (last lines)\n%s", name, tail(log, 30))
			}
			for _, p := range lastProblems {
				t.Logf("the step %q failed: %s", s.name, p)
			}
			t.FailNow()
		}
	}
}

// rendered returns the overlay's manager Deployment and the data of its
// credentials Secret.
func rendered(t *testing.T, objs []*unstructured.Unstructured) (*appsv1.Deployment, map[string]string) {
	t.Helper()
	var d *appsv1.Deployment
	var secret map[string]string
	for _, o := range objs {
		switch {
		case o.GetKind() == "Deployment" && o.GetName() == deploymentName:
			d = &appsv1.Deployment{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, d); err != nil {
				t.Fatal(err)
			}
		case o.GetKind() == "Secret" && o.GetName() == "scriptlock-credentials":
			data, _, _ := unstructured.NestedStringMap(o.Object, "stringData")
			secret = data
		}
	}
	if d == nil || secret == nil || secret["url"] == "" || secret["apiKey"] == "" {
		t.Fatal("config/e2e renders no Deployment " + deploymentName + " or no credentials Secret with url and apiKey")
	}
	return d, secret
}

// port returns the container port named name of the manager in d.
func port(t *testing.T, d *appsv1.Deployment, name string) int32 {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			if c.Name == managerName && p.Name == name {
				return p.ContainerPort
			}
		}
	}
	t.Fatalf("the manager has no port %s", name)
	return 0
}

// psViolations matches Pod Security's warning and captures its list of
// violations.
var psViolations = regexp.MustCompile(`^would violate PodSecurity "restricted:latest": (.*)$`)

// checkPodSecurityWarnings: the namespace admits the Pod ("privileged") but
// warns against "restricted". For the Deployment, hostNetwork must be all
// it reports. A Pod made from the template (in a server-side dry run) also
// gets hostPort set to each containerPort, which the API server does for
// every port of a host-network Pod, so there the ports are reported too,
// and nothing else.
func checkPodSecurityWarnings(ctx context.Context, t *testing.T, k *cluster, warnings map[string][]string, d *appsv1.Deployment) {
	t.Helper()
	for obj, ws := range warnings {
		t.Logf("warnings for %s: %q", obj, ws)
	}
	hostNetwork := "host namespaces (hostNetwork=true)"
	check := func(what string, ws []string, want string) {
		var ps []string
		for _, w := range ws {
			if m := psViolations.FindStringSubmatch(w); m != nil {
				ps = append(ps, m[1])
			} else if strings.Contains(w, "PodSecurity") {
				t.Errorf("%s: a Pod Security warning of another form: %q", what, w)
			}
		}
		if len(ps) != 1 || ps[0] != want {
			t.Errorf("%s: Pod Security reports %q, want exactly %q", what, ps, want)
		}
	}
	check("Deployment "+d.Name, warnings["Deployment/"+d.Name], hostNetwork)
	for obj, ws := range warnings {
		if obj != "Deployment/"+d.Name {
			for _, w := range ws {
				if strings.Contains(w, "PodSecurity") {
					t.Errorf("%s: unexpected Pod Security warning %q", obj, w)
				}
			}
		}
	}

	// A Pod as the ReplicaSet will create it.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-pod-security-dry-run", Namespace: operatorNS},
		Spec:       *d.Spec.Template.Spec.DeepCopy(),
	}
	var ports []string
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			ports = append(ports, fmt.Sprint(p.ContainerPort))
		}
	}
	sort.Strings(ports)
	k.warnings.take()
	if err := k.c.Create(ctx, pod, client.DryRunAll); err != nil {
		t.Fatalf("dry-run create of a Pod from the template: %v", err)
	}
	ws := k.warnings.take()
	t.Logf("warnings for a Pod of the template: %q", ws)
	check("a Pod of the template", ws, fmt.Sprintf("%s, hostPort (container %q uses hostPorts %s)", hostNetwork, managerName, strings.Join(ports, ", ")))
}

// checkProbes: the probes' endpoints answer on the host, and the kubelet
// never found the liveness probe failing.
func checkProbes(ctx context.Context, t *testing.T, k *cluster, d *appsv1.Deployment, pod corev1.Pod) {
	t.Helper()
	health := port(t, d, "health")
	c := &http.Client{Timeout: 5 * time.Second}
	for _, path := range []string{"/healthz", "/readyz"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", health, path), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", path, resp.Status)
		}
	}
	// Let the liveness probe (first after 15 s, every 20 s) run at least
	// twice before reading the events.
	if wait := time.Until(pod.CreationTimestamp.Add(40 * time.Second)); wait > 0 {
		time.Sleep(wait)
	}
	var events corev1.EventList
	if err := k.c.List(ctx, &events, client.InNamespace(operatorNS)); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if e.InvolvedObject.UID == pod.UID && e.Reason == "Unhealthy" {
			if strings.Contains(e.Message, "Liveness") {
				t.Errorf("liveness probe failed: %s (x%d)", e.Message, e.Count)
			} else {
				t.Logf("note: %s (x%d)", e.Message, e.Count)
			}
		}
	}
	var p corev1.Pod
	if err := k.c.Get(ctx, client.ObjectKeyFromObject(&pod), &p); err != nil {
		t.Fatal(err)
	}
	if s := managerStatus(&p); s == nil || s.RestartCount != 0 || !podReady(&p) {
		t.Errorf("after 40 s: %s", describePods([]corev1.Pod{p}))
	}
}

// checkMetrics scrapes the manager as Prometheus would: HTTPS (the
// manager's self-signed certificate, as the ServiceMonitor's
// insecureSkipVerify says), with a ServiceAccount token. Only a token
// whose account is bound to the shipped ClusterRole metrics-reader gets
// the metrics; another token gets 403, no token 401.
func checkMetrics(ctx context.Context, t *testing.T, k *cluster, d *appsv1.Deployment) {
	t.Helper()
	const ns = "scriptlock-e2e-metrics"
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "scraper", Namespace: ns}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "stranger", Namespace: ns}},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "scriptlock-e2e-scraper"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "scriptlock-metrics-reader"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "scraper", Namespace: ns}},
		},
	}
	for _, o := range objs {
		if err := k.c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	token := func(sa string) string {
		tr, err := k.cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	url := fmt.Sprintf("https://127.0.0.1:%d/metrics", port(t, d, "https"))
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, // as the shipped ServiceMonitor: the manager's certificate is self-signed
	}}
	scrape := func(tok string) (int, string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		if resp.TLS == nil {
			t.Errorf("GET %s was not served over TLS", url)
		}
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// RBAC caches in the API server follow the binding within a second or two.
	scraper := token("scraper")
	var code int
	var body string
	eventually(t, 30*time.Second, time.Second, "a metrics-reader scrape", func() (bool, string) {
		code, body = scrape(scraper)
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, tail(body, 3))
	})
	for _, m := range []string{"controller_runtime_reconcile_total", "workqueue_adds_total", "leader_election_master_status", "scriptlock_"} {
		if !strings.Contains(body, m) {
			t.Errorf("the metrics hold no %s", m)
		}
	}
	if code, body := scrape(token("stranger")); code != http.StatusForbidden {
		t.Errorf("a token without metrics-reader: %d %s, want 403", code, tail(body, 3))
	}
	if code, body := scrape(""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d %s, want 401", code, tail(body, 3))
	}
}

// checkSample applies config/samples, waits for Ready, finds the record at
// the simulator, deletes the Customer and finds the DELETE.
func checkSample(ctx context.Context, t *testing.T, k *cluster, sim *simulator) {
	t.Helper()
	objs, err := kustomized.Build(kustomized.RepoRoot() + "/config/samples")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].GetKind() != "Customer" {
		t.Fatalf("config/samples: want one Customer, got %d objects", len(objs))
	}
	k.apply(ctx, t, objs)
	key := types.NamespacedName{Namespace: objs[0].GetNamespace(), Name: objs[0].GetName()}
	if key.Namespace == "" {
		key.Namespace = "default"
	}
	email, _, _ := unstructured.NestedString(objs[0].Object, "spec", "email")
	cust := waitReady(ctx, t, k, key, time.Minute)
	id := cust.Status.CustomerID
	var rec *record
	for _, r := range sim.records(ctx, t) {
		if r.ID == id {
			rec = &r
		}
	}
	if rec == nil || !strings.EqualFold(rec.Email, email) {
		t.Fatalf("Ready with customerID %q, but the simulator holds %+v", id, rec)
	}
	t.Logf("%s is Ready: record %s (%s)", key, id, rec.Email)

	if err := k.c.Delete(ctx, cust); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, time.Second, "the sample Customer gone", func() (bool, string) {
		err := k.c.Get(ctx, key, &licensingv1alpha1.Customer{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	deleted := false
	for _, c := range sim.callLog(ctx, t) {
		if c.Method == http.MethodDelete && c.ID == id && c.Status == http.StatusGone {
			deleted = true
		}
	}
	if !deleted {
		t.Errorf("no DELETE of record %s answered 410 in the simulator's call log", id)
	}
	for _, r := range sim.records(ctx, t) {
		if r.ID == id {
			t.Errorf("record %s is still at the simulator", id)
		}
	}
}

func waitReady(ctx context.Context, t *testing.T, k *cluster, key types.NamespacedName, timeout time.Duration) *licensingv1alpha1.Customer {
	t.Helper()
	cust := &licensingv1alpha1.Customer{}
	eventually(t, timeout, time.Second, key.String()+" Ready", func() (bool, string) {
		if err := k.c.Get(ctx, key, cust); err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(cust.Status.Conditions, licensingv1alpha1.ConditionReady)
		if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != cust.Generation || cust.Status.CustomerID == "" {
			return false, fmt.Sprintf("conditions %+v", cust.Status.Conditions)
		}
		return true, ""
	})
	return cust
}

// standbyName is the second manager's Deployment (see checkFailover).
const standbyName = deploymentName + "-standby"

// checkFailover runs a second manager beside the first, deletes the
// leader's Pod while 100 Customers are being created, and checks that the
// other manager takes the lease and that every Customer ends Ready with
// its own record, each created once.
//
// The second manager is a second Deployment rather than replicas: 2. On
// this node every Pod shares the host's network, so two replicas of one
// template would bind the same probe and metrics ports (the scheduler
// keeps the second Pending). The standby is the shipped Deployment with
// other ports, the same ServiceAccount, image and arguments, and so the
// same lease.
func checkFailover(ctx context.Context, t *testing.T, k *cluster, sim *simulator) {
	t.Helper()
	var live appsv1.Deployment
	if err := k.c.Get(ctx, types.NamespacedName{Namespace: operatorNS, Name: deploymentName}, &live); err != nil {
		t.Fatal(err)
	}
	standby := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: standbyName, Namespace: operatorNS, Labels: live.Labels},
		Spec:       *live.Spec.DeepCopy(),
	}
	standby.Spec.Selector.MatchLabels["scriptlock-e2e/manager"] = "standby"
	standby.Spec.Template.Labels["scriptlock-e2e/manager"] = "standby"
	mc := &standby.Spec.Template.Spec.Containers[0]
	// Free on the host: hack/e2e/ports.sh (E2E_MANAGER_PORTS) checks them.
	ports := map[string]int32{"health": 28082, "https": 28444}
	for i, p := range mc.Ports {
		if n, ok := ports[p.Name]; ok {
			old := p.ContainerPort
			mc.Ports[i].ContainerPort = n
			for j, a := range mc.Args {
				mc.Args[j] = strings.Replace(a, fmt.Sprintf(":%d", old), fmt.Sprintf(":%d", n), 1)
			}
		}
	}
	if err := k.c.Create(ctx, standby); err != nil {
		t.Fatal(err)
	}
	standbyPod := k.waitAvailable(ctx, t, standbyName, 2*time.Minute)[0]
	k.followLogs(standbyPod)
	leaderPod := k.waitAvailable(ctx, t, deploymentName, time.Minute)[0]
	k.followLogs(leaderPod)

	// Which Pod leads? Both run on the host's network, so both identities
	// start with the host's name; the leader is the one that logged the
	// acquisition.
	lease := &coordinationv1.Lease{}
	if err := k.c.Get(ctx, types.NamespacedName{Namespace: operatorNS, Name: leaseName}, lease); err != nil {
		t.Fatal(err)
	}
	holder := ptr.Deref(lease.Spec.HolderIdentity, "")
	transitions := ptr.Deref(lease.Spec.LeaseTransitions, 0)
	acquired := func(p corev1.Pod) bool {
		return strings.Contains(strings.ToLower(k.logOf(p)), "successfully acquired lease")
	}
	eventually(t, 30*time.Second, 500*time.Millisecond, "both managers' logs read", func() (bool, string) {
		l, s := k.logOf(leaderPod), k.logOf(standbyPod)
		return strings.Contains(l, "starting manager") && strings.Contains(strings.ToLower(s), "attempting to acquire leader lease"),
			fmt.Sprintf("leader: %d bytes, standby: %d bytes", len(l), len(s))
	})
	if !acquired(leaderPod) || acquired(standbyPod) {
		t.Fatalf("want the first manager %s to lead and the standby %s to wait; lease held by %q", leaderPod.Name, standbyPod.Name, holder)
	}
	t.Logf("leader %s (lease holder %s, %d transitions), standby %s", leaderPod.Name, holder, transitions, standbyPod.Name)

	// Answers take 300 ms, so that creates are in flight when the leader goes.
	if err := sim.do(ctx, http.MethodPost, "/_sim/latency", `{"latency":"300ms"}`, nil); err != nil {
		t.Fatal(err)
	}
	const ns, n = "scriptlock-e2e-storm", 100
	if err := k.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	email := func(i int) string { return fmt.Sprintf("storm-%03d@e2e.example.com", i) }
	var created atomic.Int32
	var wg sync.WaitGroup
	next := make(chan int)
	errs := make(chan error, n)
	for range 4 {
		wg.Go(func() {
			for i := range next {
				c := &licensingv1alpha1.Customer{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("storm-%03d", i), Namespace: ns},
					Spec: licensingv1alpha1.CustomerSpec{
						Company: "E2E Storm", FirstName: "Storm", LastName: fmt.Sprintf("No. %d", i), Email: email(i),
					},
				}
				if err := k.c.Create(ctx, c); err != nil {
					errs <- err
				}
				created.Add(1)
			}
		})
	}
	var killedAt time.Time
	for i := range n {
		next <- i
		if i == 30 {
			// Delete the leader's Pod as `kubectl delete pod` does
			// (graceful: SIGTERM, 40 s at most) while it works on the
			// first ones.
			if err := k.c.Delete(ctx, &leaderPod); err != nil {
				t.Fatal(err)
			}
			killedAt = time.Now()
			c, r := created.Load(), countReady(ctx, t, k, ns)
			t.Logf("deleted the leader's Pod %s with %d Customers created, %d of them Ready", leaderPod.Name, c, r)
			if int(c) == r {
				t.Errorf("every Customer created was Ready when the leader went: the storm did not overlap the handover")
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("creating Customers: %v", err)
	}

	// The lease goes to a manager that still runs: the standby, or the
	// deleted Pod's replacement if it asks first (it starts as soon as its
	// predecessor has freed the host ports). Exactly one of them may say
	// it acquired the lease.
	var newLeader string
	eventually(t, 2*time.Minute, 500*time.Millisecond, "another manager takes the lease", func() (bool, string) {
		if err := k.c.Get(ctx, types.NamespacedName{Namespace: operatorNS, Name: leaseName}, lease); err != nil {
			return false, err.Error()
		}
		var leaders []string
		for _, name := range []string{deploymentName, standbyName} {
			for _, p := range k.managerPods(ctx, t, name) {
				if p.UID == leaderPod.UID || p.DeletionTimestamp != nil {
					continue
				}
				if s := managerStatus(&p); s != nil && s.State.Running != nil {
					k.followLogs(p)
				}
				if acquired(p) {
					leaders = append(leaders, p.Name)
				}
			}
		}
		h := ptr.Deref(lease.Spec.HolderIdentity, "")
		if len(leaders) > 1 {
			t.Fatalf("two running managers say they acquired the lease: %v", leaders)
		}
		if len(leaders) == 1 {
			newLeader = leaders[0]
		}
		return h != "" && h != holder && len(leaders) == 1,
			fmt.Sprintf("holder %q, transitions %d, managers that acquired it: %v", h, ptr.Deref(lease.Spec.LeaseTransitions, 0), leaders)
	})
	t.Logf("%s leads (%s) %s after the delete; lease transitions %d -> %d", newLeader,
		ptr.Deref(lease.Spec.HolderIdentity, ""), time.Since(killedAt).Round(100*time.Millisecond), transitions, ptr.Deref(lease.Spec.LeaseTransitions, 0))
	if ptr.Deref(lease.Spec.LeaseTransitions, 0) <= transitions {
		t.Errorf("lease transitions %d, want more than %d", ptr.Deref(lease.Spec.LeaseTransitions, 0), transitions)
	}

	// Every Customer Ready, each with its own record.
	var list licensingv1alpha1.CustomerList
	eventually(t, 5*time.Minute, 2*time.Second, "100 Customers Ready", func() (bool, string) {
		if err := k.c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		ready := 0
		var notReady []string
		for _, c := range list.Items {
			if cond := meta.FindStatusCondition(c.Status.Conditions, licensingv1alpha1.ConditionReady); cond != nil &&
				cond.Status == metav1.ConditionTrue && cond.ObservedGeneration == c.Generation && c.Status.CustomerID != "" {
				ready++
			} else if len(notReady) < 3 {
				notReady = append(notReady, fmt.Sprintf("%s %+v", c.Name, c.Status.Conditions))
			}
		}
		return len(list.Items) == n && ready == n, fmt.Sprintf("%d of %d Ready; e.g. %v", ready, len(list.Items), notReady)
	})
	t.Logf("all %d Ready %s after the delete", n, time.Since(killedAt).Round(time.Second))

	byEmail := map[string][]string{}
	for _, r := range sim.records(ctx, t) {
		if strings.HasPrefix(r.Email, "storm-") {
			byEmail[strings.ToLower(r.Email)] = append(byEmail[strings.ToLower(r.Email)], r.ID)
		}
	}
	if len(byEmail) != n {
		t.Errorf("the simulator holds records for %d storm emails, want %d", len(byEmail), n)
	}
	ids := map[string]string{}
	for _, c := range list.Items {
		recs := byEmail[strings.ToLower(c.Spec.Email)]
		if len(recs) != 1 || recs[0] != c.Status.CustomerID {
			t.Errorf("%s: status.customerID %s, records with its email %v", c.Name, c.Status.CustomerID, recs)
		}
		if other, dup := ids[c.Status.CustomerID]; dup {
			t.Errorf("%s and %s are both bound to record %s", other, c.Name, c.Status.CustomerID)
		}
		ids[c.Status.CustomerID] = c.Name
	}
	posts := map[int]int{}
	for _, c := range sim.callLog(ctx, t) {
		if c.Method == http.MethodPost && strings.HasPrefix(c.Email, "storm-") {
			posts[c.Status]++
		}
	}
	if posts[http.StatusCreated] != n {
		t.Errorf("creates answered 201: %d, want %d (every answer: %v)", posts[http.StatusCreated], n, posts)
	}
	t.Logf("creates by answer: %v", posts)

	// The deleted Pod's replacement comes up too (leading or waiting).
	pods := k.waitAvailable(ctx, t, deploymentName, 3*time.Minute)
	k.followLogs(pods[0])
	if s := managerStatus(&pods[0]); s == nil || s.RestartCount != 0 {
		t.Errorf("the replacement Pod: %s", describePods(pods))
	}
	if log := k.logOf(leaderPod); !strings.Contains(log, "Stopping and waiting") && !strings.Contains(log, "successfully released") {
		t.Logf("note: the old leader's log does not show a graceful stop; last lines:\n%s", tail(log, 10))
	}
}

// kubeletNotYetSynced says whether a FailedMount message is the kubelet's
// first try to mount a ConfigMap or Secret of a Pod before its own caches
// know the object (the Pod, its namespace or the object seconds old): it
// retries, and a Pod that never mounts never starts, which the steps before
// fail on.
func kubeletNotYetSynced(msg string) bool {
	return strings.Contains(msg, "failed to sync configmap cache") ||
		strings.Contains(msg, "failed to sync secret cache") ||
		strings.Contains(msg, "not registered")
}

// dumpEvents writes every event of the cluster to events.txt among the
// artifacts, for a failure's post-mortem.
func (k *cluster) dumpEvents(ctx context.Context, t *testing.T) {
	var events corev1.EventList
	if err := k.c.List(ctx, &events); err != nil {
		t.Logf("listing events: %v", err)
		return
	}
	// Events of the events.k8s.io API (the scheduler's) have an
	// eventTime and no lastTimestamp.
	at := func(e corev1.Event) time.Time {
		if e.LastTimestamp.IsZero() {
			return e.EventTime.Time
		}
		return e.LastTimestamp.Time
	}
	sort.SliceStable(events.Items, func(i, j int) bool { return at(events.Items[i]).Before(at(events.Items[j])) })
	var b strings.Builder
	for _, e := range events.Items {
		fmt.Fprintf(&b, "%s %s %s %s/%s %s: %s (x%d)\n", at(e).Format(time.RFC3339), e.Type, e.InvolvedObject.Kind,
			e.InvolvedObject.Namespace, e.InvolvedObject.Name, e.Reason, e.Message, e.Count)
	}
	if err := os.WriteFile(filepath.Join(k.artifacts, "events.txt"), []byte(b.String()), 0o644); err != nil {
		t.Logf("writing events: %v", err)
	}
}

// countReady counts the Customers in ns whose Ready condition is True.
func countReady(ctx context.Context, t *testing.T, k *cluster, ns string) int {
	t.Helper()
	var list licensingv1alpha1.CustomerList
	if err := k.c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range list.Items {
		if meta.IsStatusConditionTrue(c.Status.Conditions, licensingv1alpha1.ConditionReady) {
			n++
		}
	}
	return n
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
