package monitor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/litefleet/litefleet/replication"
	"github.com/litefleet/litefleet/untrusted"
)

// Options configure the handler.
type Options struct {
	// Now is the clock; time.Now when nil.
	Now    func() time.Time
	Logger *slog.Logger
	// Version is litefleet's version for litefleet_build_info; the
	// binary's build info says it when empty or "dev".
	Version string
	// Recorder holds the histograms the engine feeds (give the same one
	// as replication.Options.Observer); empty ones are served when nil.
	Recorder *Recorder
	// VerifyEvery is replicate's -verify-every, served as
	// litefleet_verify_period_seconds when positive: the alert on
	// tenants not verified for two periods reads it.
	VerifyEvery time.Duration
}

// NewHandler serves /metrics, /healthz and /status from src.
func NewHandler(src Source, opt Options) http.Handler {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Recorder == nil {
		opt.Recorder = NewRecorder()
	}
	reg := runtimeRegistry()
	reg.MustRegister(buildInfo(opt.Version), opt.Recorder.syncDuration, opt.Recorder.commitLatency)
	if opt.VerifyEvery > 0 {
		reg.MustRegister(verifyPeriod(opt.VerifyEvery))
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metricsHandler(src, reg, opt.Now, opt.Logger))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("tenants") {
			tenantsHealth(w, src, opt.Now())
			return
		}
		liveness(w, src)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { tenantsHealth(w, src, opt.Now()) })
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) { status(w, src, opt.Now()) })
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "litefleet replicate: /metrics (Prometheus), /healthz (the process works), /readyz or /healthz?tenants (every tenant healthy), /status (JSON)")
	})
	return mux
}

// alive is what a Source may say of the process itself (the engine:
// whether its scheduler runs).
type alive interface{ Alive() error }

// liveness answers 200 while the process works, whatever its tenants do:
// as a liveness probe, /healthz must not restart a fleet of thousands for
// one failing tenant (that is /readyz's question). 503 when the engine's
// scheduler has stopped running.
func liveness(w http.ResponseWriter, src Source) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if a, ok := src.(alive); ok {
		if err := a.Alive(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not alive: %s\n", err)
			return
		}
	}
	st := src.Status()
	bad := 0
	for _, s := range st {
		if !s.State.Healthy() {
			bad++
		}
	}
	fmt.Fprintf(w, "ok: alive, %d tenant(s), %d unhealthy (see /readyz)\n", len(st), bad)
}

// tenantsHealth (/readyz, /healthz?tenants) answers 200 when every tenant
// is replicating, sleeping or leased elsewhere, and 503 otherwise, naming
// each failing tenant and its state on a line of its own.
func tenantsHealth(w http.ResponseWriter, src Source, now time.Time) {
	st := src.Status()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	var bad []replication.TenantStatus
	for _, s := range st {
		if !s.State.Healthy() {
			bad = append(bad, s)
		}
	}
	if len(bad) == 0 {
		fmt.Fprintf(w, "ok: %d tenant(s) replicating, sleeping or leased elsewhere\n", len(st))
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	bw := bufio.NewWriter(w)
	for _, s := range bad {
		line := untrusted.Printable(s.Tenant) + ": " + string(s.State)
		if s.State == replication.StateSyncFailing && !s.Since.IsZero() {
			// How long S3 has not taken its changes: the alert's urgency.
			line += fmt.Sprintf(" since %s (%s)", s.Since.UTC().Format(time.RFC3339), max(now.Sub(s.Since), 0).Round(time.Second))
		}
		if s.Reason != "" {
			line += ": " + untrusted.Printable(s.Reason)
		}
		fmt.Fprintln(bw, line)
	}
	_ = bw.Flush()
}

// Tenant is one tenant in /status: the engine's status with the names
// `ls -json` gives the same facts (tenant, host, state, reason, lag_txids,
// lag_ns).
type Tenant struct {
	replication.TenantStatus
	Host     string `json:"host"`
	LagTXIDs uint64 `json:"lag_txids"`
}

// StatusDoc is the body of /status.
type StatusDoc struct {
	Tenants    []Tenant                      `json:"tenants"`
	Heartbeats []replication.HeartbeatStatus `json:"heartbeats"`
	Counts     map[replication.State]int     `json:"counts"`
	At         time.Time                     `json:"at"`
}

// status writes StatusDoc a tenant at a time, as json.Encoder with a
// two-space indent would in one piece: at 100,000 tenants the whole
// document built in memory and indented again cost 350 MB and most of a
// second a request.
func status(w http.ResponseWriter, src Source, now time.Time) {
	beats := src.Heartbeats()
	if beats == nil {
		beats = []replication.HeartbeatStatus{}
	}
	redacted := map[string]string{} // a fleet has a handful of endpoints
	redact := func(ep string) string {
		r, ok := redacted[ep]
		if !ok {
			r = Redact(ep)
			redacted[ep] = r
		}
		return r
	}
	hostOf := map[string]string{}
	for i := range beats {
		beats[i].Endpoint = redact(beats[i].Endpoint)
		hostOf[beats[i].Endpoint+"\x00"+beats[i].Bucket] = beats[i].Host
	}
	st := src.Status()
	counts := map[replication.State]int{}

	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	bw := bufio.NewWriterSize(w, 64<<10)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("    ", "  ")
	put := func(v any) bool {
		buf.Reset()
		if err := enc.Encode(v); err != nil {
			return false
		}
		_, err := bw.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
		return err == nil
	}
	_, _ = bw.WriteString("{\n  \"tenants\": [")
	for i, s := range st {
		s.Endpoint = redact(s.Endpoint)
		t := Tenant{TenantStatus: s, Host: hostOf[s.Endpoint+"\x00"+s.Bucket]}
		if s.LocalTXID > s.ReplicatedTXID {
			t.LagTXIDs = s.LocalTXID - s.ReplicatedTXID
		}
		counts[s.State]++
		if i > 0 {
			_ = bw.WriteByte(',')
		}
		_, _ = bw.WriteString("\n    ")
		if !put(t) {
			return
		}
	}
	if len(st) > 0 {
		_, _ = bw.WriteString("\n  ")
	}
	enc.SetIndent("  ", "  ")
	_, _ = bw.WriteString("],\n  \"heartbeats\": ")
	put(beats)
	_, _ = bw.WriteString(",\n  \"counts\": ")
	put(counts)
	_, _ = bw.WriteString(",\n  \"at\": ")
	put(now.UTC())
	_, _ = bw.WriteString("\n}\n")
	_ = bw.Flush()
}

// Redact drops any user information from an endpoint URL: an endpoint
// written as http://KEY:SECRET@host must not carry the secret out.
func Redact(endpoint string) string {
	if endpoint == "" {
		return ""
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "(unparsable endpoint)"
	}
	if u.User == nil {
		return endpoint
	}
	u.User = nil
	return u.String()
}

// Server is the monitor's HTTP server.
type Server struct {
	ln  net.Listener
	srv *http.Server
	ch  chan error
}

// Listen binds addr (HOST:PORT; port 0 picks one) and serves h until
// Close. A bind failure says what to change.
func Listen(addr string, h http.Handler) (*Server, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("-addr %q is not HOST:PORT (e.g. 127.0.0.1:9090): %w", addr, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-addr %s: cannot listen (%w): choose a free port, or another address", addr, errors.Unwrap(err))
	}
	s := &Server{ln: ln, ch: make(chan error, 1), srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      time.Minute,
	}}
	go func() { s.ch <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server, letting requests in flight finish until ctx ends.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if serveErr := <-s.ch; serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = serveErr
	}
	return err
}
