// Command scriptlock-sim serves the ScriptLock simulator (package
// internal/scriptlock/sim) for the demo and for manual testing.
//
//	scriptlock-sim --listen 127.0.0.1:8089 --api-key KEY [--api-key KEY2] [--seed records.json] [--latency 50ms]
//
// The API keys may also come from SCRIPTLOCK_API_KEY (comma-separated). The
// seed file is a JSON array of records stored in the first key's account.
// It prints "listening on http://ADDR" once it accepts connections and stops
// gracefully on SIGINT or SIGTERM.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/scriptlock/customer-operator/internal/scriptlock"
	"github.com/scriptlock/customer-operator/internal/scriptlock/sim"
)

// keyList is a repeatable, comma-separated flag.
type keyList []string

func (k *keyList) String() string { return fmt.Sprintf("%d key(s)", len(*k)) }

func (k *keyList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*k = append(*k, s)
		}
	}
	return nil
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "scriptlock-sim:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("scriptlock-sim", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8089", "address to listen on")
	var keys keyList
	fs.Var(&keys, "api-key", "API key of an account (repeatable or comma-separated; also SCRIPTLOCK_API_KEY)")
	seed := fs.String("seed", "", "JSON file with an array of records for the first account")
	latency := fs.Duration("latency", 0, "delay added to every API answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if env := os.Getenv("SCRIPTLOCK_API_KEY"); env != "" {
		_ = keys.Set(env)
	}
	if len(keys) == 0 {
		return errors.New("no API key: pass --api-key or set SCRIPTLOCK_API_KEY")
	}

	opts := []sim.Option{sim.WithLatency(*latency)}
	for _, k := range keys {
		opts = append(opts, sim.WithAccount(k))
	}
	srv := sim.New(opts...)
	if *seed != "" {
		n, err := seedFrom(srv, keys[0], *seed)
		if err != nil {
			return err
		}
		slog.Info("seeded records", "count", n, "file", *seed)
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           logRequests(slog.Default(), srv),
		ReadHeaderTimeout: 10 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	// Scripts wait for this exact line, so print it only once the listener
	// is accepting and flush it at once.
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(w, "listening on http://%s\n", ln.Addr())
	_ = w.Flush()

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	slog.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func seedFrom(srv *sim.Server, key, path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var recs []scriptlock.Customer
	if err := json.Unmarshal(data, &recs); err != nil {
		return 0, fmt.Errorf("seed file %s: %w", path, err)
	}
	for _, c := range recs {
		srv.Put(key, c)
	}
	return len(recs), nil
}

// logRequests logs every request by method and path only: the key travels
// in the Authorization header and, for admin calls, in the query string, so
// neither is logged.
func logRequests(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			log.Info("request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
				"duration", time.Since(start).Round(time.Microsecond), "remote", r.RemoteAddr)
		}()
		next.ServeHTTP(sw, r)
	})
}

// statusWriter records the status for the log. It passes Hijack through
// because the simulator drops connections to simulate lost answers.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := s.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("hijacking not supported")
	}
	return hj.Hijack()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
