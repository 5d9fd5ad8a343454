//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensingv1alpha1 "github.com/scriptlock/customer-operator/api/v1alpha1"
	"github.com/scriptlock/customer-operator/hack/localenv"
	"github.com/scriptlock/customer-operator/test/kustomized"
)

const (
	// operatorNS, deploymentName and leaseName are what config/default
	// ships (namePrefix scriptlock-) and what main.go defaults to.
	operatorNS     = "scriptlock-system"
	deploymentName = "scriptlock-controller-manager"
	leaseName      = "customer-operator.licensing.scriptlock.com"
	managerName    = "manager"
	fieldOwner     = "scriptlock-e2e"
)

// cluster is the node under test and the clients the test uses on it.
type cluster struct {
	cfg      *rest.Config
	c        client.Client
	cs       kubernetes.Interface
	warnings *warningRecorder
	// artifacts is where the managers' logs go (E2E_ARTIFACTS, else a
	// temporary folder).
	artifacts string
	logs      *logCollector
}

// warningRecorder keeps the warnings the API server sends (Pod Security's
// among them), so that a test can read those of one request.
type warningRecorder struct {
	mu   sync.Mutex
	seen []string
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = append(w.seen, text)
}

// take returns the warnings seen since the last take.
func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.seen
	w.seen = nil
	return out
}

func connect(t *testing.T) *cluster {
	t.Helper()
	kubeconfig := os.Getenv("E2E_KUBECONFIG")
	if kubeconfig == "" {
		t.Fatal("E2E_KUBECONFIG is not set: run `make e2e` (or `make e2e-up` and point E2E_KUBECONFIG at its kubeconfig)")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	w := &warningRecorder{}
	cfg.WarningHandler = w
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := licensingv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	artifacts := os.Getenv("E2E_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	} else if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	return &cluster{cfg: cfg, c: c, cs: cs, warnings: w, artifacts: artifacts}
}

// apply server-side applies objects, Namespaces and CRDs first (as kubectl
// apply does, kustomize's output order being another), and returns the API
// server's warnings for each, by "Kind/name".
func (k *cluster) apply(ctx context.Context, t *testing.T, objs []*unstructured.Unstructured) map[string][]string {
	t.Helper()
	first := func(o *unstructured.Unstructured) bool {
		return o.GetKind() == "Namespace" || o.GetKind() == "CustomResourceDefinition"
	}
	objs = slices.Clone(objs)
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int {
		switch {
		case first(a) && !first(b):
			return -1
		case first(b) && !first(a):
			return 1
		}
		return 0
	})
	warnings := map[string][]string{}
	k.warnings.take()
	for _, o := range objs {
		o = o.DeepCopy()
		if err := k.c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.FieldOwner(fieldOwner), client.ForceOwnership); err != nil {
			t.Fatalf("apply %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
		if w := k.warnings.take(); len(w) > 0 {
			warnings[o.GetKind()+"/"+o.GetName()] = w
		}
	}
	return warnings
}

// eventually calls cond every interval until it reports done, failing the
// test with cond's last word after timeout.
func eventually(t *testing.T, timeout, interval time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done, msg := cond()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %s", what, timeout, msg)
		}
		time.Sleep(interval)
	}
}

// managerPods lists the manager Pods of the Deployment named name (by the
// ReplicaSets it owns), running or terminating.
func (k *cluster) managerPods(ctx context.Context, t *testing.T, name string) []corev1.Pod {
	t.Helper()
	var rss appsv1.ReplicaSetList
	if err := k.c.List(ctx, &rss, client.InNamespace(operatorNS)); err != nil {
		t.Fatal(err)
	}
	owned := map[string]bool{}
	for _, rs := range rss.Items {
		if ref := controllerOf(rs.OwnerReferences); ref == name {
			owned[rs.Name] = true
		}
	}
	var pods corev1.PodList
	if err := k.c.List(ctx, &pods, client.InNamespace(operatorNS)); err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if owned[controllerOf(p.OwnerReferences)] {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreationTimestamp.Before(&out[j].CreationTimestamp) })
	return out
}

func controllerOf(refs []metav1.OwnerReference) string {
	for _, r := range refs {
		if r.Controller != nil && *r.Controller {
			return r.Name
		}
	}
	return ""
}

// managerStatus returns the manager container's status in p.
func managerStatus(p *corev1.Pod) *corev1.ContainerStatus {
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == managerName {
			return &p.Status.ContainerStatuses[i]
		}
	}
	return nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitAvailable waits for the Deployment to be Available with every
// replica updated and ready, and returns its one running Pod per replica.
func (k *cluster) waitAvailable(ctx context.Context, t *testing.T, name string, timeout time.Duration) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	eventually(t, timeout, time.Second, "Deployment "+name+" Available", func() (bool, string) {
		var d appsv1.Deployment
		if err := k.c.Get(ctx, types.NamespacedName{Namespace: operatorNS, Name: name}, &d); err != nil {
			return false, err.Error()
		}
		available := false
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue {
				available = true
			}
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		pods = nil
		for _, p := range k.managerPods(ctx, t, name) {
			if p.DeletionTimestamp == nil {
				pods = append(pods, p)
			}
		}
		if !available || d.Status.UpdatedReplicas != want || d.Status.ReadyReplicas != want ||
			d.Status.AvailableReplicas != want || d.Status.Replicas != want || len(pods) != int(want) {
			return false, fmt.Sprintf("available=%v status=%+v pods=%s", available, d.Status, describePods(pods))
		}
		return true, ""
	})
	return pods
}

func describePods(pods []corev1.Pod) string {
	var b strings.Builder
	for _, p := range pods {
		fmt.Fprintf(&b, "[%s phase=%s ready=%v", p.Name, p.Status.Phase, podReady(&p))
		if s := managerStatus(&p); s != nil {
			fmt.Fprintf(&b, " restarts=%d", s.RestartCount)
			if s.State.Waiting != nil {
				fmt.Fprintf(&b, " waiting=%s: %s", s.State.Waiting.Reason, s.State.Waiting.Message)
			}
			if s.LastTerminationState.Terminated != nil {
				fmt.Fprintf(&b, " lastExit=%d %s", s.LastTerminationState.Terminated.ExitCode, s.LastTerminationState.Terminated.Reason)
			}
		}
		for _, c := range p.Status.Conditions {
			if c.Status != corev1.ConditionTrue && c.Message != "" {
				fmt.Fprintf(&b, " %s: %s", c.Type, c.Message)
			}
		}
		b.WriteString("] ")
	}
	return b.String()
}

// logCollector follows the manager container's log of every Pod it is
// told about into a file each, from the container's start to its end (a
// deleted Pod's last lines included).
type logCollector struct {
	ctx     context.Context // ends every stream
	mu      sync.Mutex
	started map[types.UID]string // pod UID -> log file
	wg      sync.WaitGroup
}

func (k *cluster) followLogs(p corev1.Pod) {
	l := k.logs
	ctx := l.ctx
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.started[p.UID]; ok {
		return
	}
	file := filepath.Join(k.artifacts, p.Name+".log")
	l.started[p.UID] = file
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		f, err := os.Create(file)
		if err != nil {
			return
		}
		defer f.Close()
		// The container may not have started yet: retry until it streams.
		// A stream that ends while the container still runs (a connection
		// closed on the way) is started again, from the log's beginning.
		for ctx.Err() == nil {
			rc, err := k.cs.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: managerName, Follow: true}).Stream(ctx)
			if err != nil {
				if apierrors.IsNotFound(err) {
					return
				}
				time.Sleep(500 * time.Millisecond)
				continue
			}
			if err := f.Truncate(0); err != nil {
				return
			}
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return
			}
			_, _ = io.Copy(f, rc)
			_ = rc.Close()
			var now corev1.Pod
			if err := k.c.Get(ctx, client.ObjectKeyFromObject(&p), &now); err != nil || now.UID != p.UID {
				return
			}
			if s := managerStatus(&now); s == nil || s.State.Running == nil {
				return
			}
		}
	}()
}

// logOf returns what was collected of p's log so far.
func (k *cluster) logOf(p corev1.Pod) string {
	k.logs.mu.Lock()
	file := k.logs.started[p.UID]
	k.logs.mu.Unlock()
	b, _ := os.ReadFile(file)
	return string(b)
}

// allLogs returns every collected log by file name.
func (k *cluster) allLogs() map[string]string {
	k.logs.mu.Lock()
	defer k.logs.mu.Unlock()
	out := map[string]string{}
	for _, file := range k.logs.started {
		b, _ := os.ReadFile(file)
		out[filepath.Base(file)] = string(b)
	}
	return out
}

// simulator is cmd/scriptlock-sim, run by the test on the host's loopback
// at the URL of the overlay's credentials Secret.
type simulator struct {
	url  string
	key  string
	http *http.Client
}

func startSimulator(ctx context.Context, t *testing.T, artifacts, url, key string) *simulator {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "scriptlock-sim")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/scriptlock-sim")
	build.Dir = kustomized.RepoRoot()
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the simulator: %v\n%s", err, out)
	}
	sim, err := localenv.StartSim(ctx, localenv.SimOptions{
		Bin: bin, Listen: strings.TrimPrefix(url, "http://"), APIKey: key,
		Log: filepath.Join(artifacts, "scriptlock-sim.log"), Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Stop(10 * time.Second) })
	if sim.URL != url {
		t.Fatalf("the simulator listens on %s, want %s", sim.URL, url)
	}
	return &simulator{url: url, key: key, http: &http.Client{Timeout: 30 * time.Second}}
}

// do sends an admin request to the simulator and decodes a JSON answer
// into out (if not nil).
func (s *simulator) do(ctx context.Context, method, path, body string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, s.url+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// record is a ScriptLock record as the simulator's admin API lists it.
type record struct {
	ID    string `json:"id"`
	Email string `json:"email"`
}

// call is one entry of the simulator's call log.
type call struct {
	Method string `json:"method"`
	Route  string `json:"route"`
	Status int    `json:"status"`
	ID     string `json:"id"`
	Email  string `json:"email"`
}

func (s *simulator) records(ctx context.Context, t *testing.T) []record {
	t.Helper()
	var recs []record
	if err := s.do(ctx, http.MethodGet, "/_sim/records", "", &recs); err != nil {
		t.Fatal(err)
	}
	return recs
}

func (s *simulator) callLog(ctx context.Context, t *testing.T) []call {
	t.Helper()
	var calls []call
	if err := s.do(ctx, http.MethodGet, "/_sim/call-log", "", &calls); err != nil {
		t.Fatal(err)
	}
	return calls
}
