package explorer

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/scriptlock/customer-operator/api/v1alpha1"
)

var (
	restCfg *rest.Config
	scheme  = runtime.NewScheme()
	// logs holds every log line of the run, at the highest verbosity, for
	// the check that no API key reaches a log.
	logs = &syncBuffer{}
)

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Since returns what was written from offset on, and the new offset.
func (b *syncBuffer) Since(offset int) (string, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()[min(offset, b.buf.Len()):], b.buf.Len()
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); assets == "" || err != nil {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS must name a folder with kube-apiserver and etcd: run `make test` or `make explore`")
		return 1
	}
	logger := zap.New(zap.WriteTo(zapcore.AddSync(logs)), zap.Level(zapcore.Level(-10)))
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	if restCfg, err = env.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "starting kube-apiserver and etcd:", err)
		return 1
	}
	code := m.Run()
	if f := os.Getenv("EXPLORE_LOG"); f != "" {
		// The operator's log of the whole run, to read a replay by.
		all, _ := logs.Since(0)
		_ = os.WriteFile(f, []byte(all), 0o600)
	}
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
	}
	return code
}
