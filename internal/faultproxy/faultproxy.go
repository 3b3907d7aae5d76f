// Package faultproxy is an HTTP reverse proxy for an S3 server on
// 127.0.0.1 that injects the network and server faults a replicator meets
// in a real fleet, switched on and off while it runs: a black hole
// (connections accepted, never answered), refused connections, latency,
// writes applied late (a PUT held and forwarded after its client gave up:
// a deposed host's late write), a slow link (request bodies read at a
// bounded rate), a skewed Date header (a proxy or S3 node with another
// clock), and a server that ignores conditional writes (If-Match and
// If-None-Match stripped, the request signed again).
//
// Every write it forwards (PUT of an object or part, completion of a
// multipart upload, DELETE) is reported to Options.OnWrite with a hash of
// its body, so that a checker can tell who wrote what into the bucket.
//
// The proxy expects path-style requests, as the AWS SDK sends with a
// custom endpoint. It forwards the Host header unchanged, so SigV4
// signatures stay valid; a request whose conditional headers it strips is
// signed again with Options' credentials.
package faultproxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Mode is what happens to a new request or connection.
type Mode int

const (
	// Pass forwards requests (with the other faults applied).
	Pass Mode = iota
	// BlackHole accepts requests and never answers them; they are closed
	// when the mode changes or the proxy closes.
	BlackHole
	// Refuse closes the listener and every open connection: new
	// connections are refused by the kernel.
	Refuse
)

func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case BlackHole:
		return "black hole"
	case Refuse:
		return "refuse"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Faults is the set of faults applied to requests from now on. The zero
// value forwards everything unchanged.
type Faults struct {
	Mode Mode
	// Latency is added before each request is forwarded.
	Latency time.Duration
	// LateP is the probability that a PUT of an LTX file (or a multipart
	// completion) is held: the client gets no answer, and the request is
	// forwarded LateBy later, whatever became of the client.
	LateP  float64
	LateBy time.Duration
	// DateSkew is added to the Date header of every response.
	DateSkew time.Duration
	// StripConditional removes If-Match and If-None-Match from requests,
	// as a server that ignores them would.
	StripConditional bool
	// Bandwidth, when positive, is the rate in bytes per second at which
	// each request's body is read: a slow uplink.
	Bandwidth int
}

// Write is one write the proxy forwarded, reported once its answer came.
type Write struct {
	Proxy  string // Options.Name
	Method string
	Key    string // bucket/key
	// Query is the request's raw query: partNumber and uploadId for a
	// multipart part, uploads for its creation, uploadId for its
	// completion or abort.
	Query string
	// Hash is the SHA-256 of a PUT's body; for a multipart completion,
	// "etag:" and the ETag S3 answered; empty for a DELETE.
	Hash   string
	Size   int64
	Status int // 0 when the server could not be reached
	Start  time.Time
	End    time.Time
	Late   bool // held and forwarded late
	// Stripped says conditional headers were removed.
	Stripped bool
	// Conditional names the conditional headers the client sent.
	Conditional string
}

// Options configure a proxy.
type Options struct {
	// Name identifies the proxy (the process behind it) in Write.
	Name string
	// Target is the S3 server's base URL, e.g. http://127.0.0.1:7070.
	Target string
	// AccessKey, SecretKey and Region sign a request again after its
	// conditional headers were stripped.
	AccessKey, SecretKey, Region string
	// OnWrite, if set, is called for every forwarded write; it must be
	// safe for concurrent use.
	OnWrite func(Write)
	// Seed seeds the choice of the writes applied late.
	Seed uint64
	Log  *slog.Logger
}

// Proxy is a running fault proxy.
type Proxy struct {
	opt    Options
	target *url.URL
	addr   string
	rp     *httputil.ReverseProxy
	signer *v4.Signer

	mu      sync.Mutex
	faults  Faults
	healed  chan struct{} // closed when the mode leaves BlackHole
	rnd     *rand.Rand
	ln      net.Listener
	srv     *http.Server
	closed  bool
	serving sync.WaitGroup
	late    sync.WaitGroup
	stop    chan struct{}

	// connMu guards conns apart from mu: the server's ConnState hook runs
	// inside Serve, which Close waits for while mu is held.
	connMu sync.Mutex
	conns  map[net.Conn]struct{}
}

// Start starts a proxy on a free port of 127.0.0.1 in front of opt.Target.
func Start(opt Options) (*Proxy, error) {
	target, err := url.Parse(opt.Target)
	if err != nil || target.Scheme != "http" || target.Host == "" {
		return nil, fmt.Errorf("faultproxy: target %q: give the S3 server's base URL, e.g. http://127.0.0.1:7070", opt.Target)
	}
	if opt.Region == "" {
		opt.Region = "us-east-1"
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{
		opt: opt, target: target, addr: ln.Addr().String(), signer: v4.NewSigner(),
		healed: make(chan struct{}), rnd: rand.New(rand.NewPCG(opt.Seed, opt.Seed^0x9e3779b97f4a7c15)),
		conns: map[net.Conn]struct{}{}, stop: make(chan struct{}),
	}
	close(p.healed)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.DisableCompression = true
	tr.MaxIdleConnsPerHost = 64
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // the client signed the Host it sent
		},
		Transport:      tr,
		ModifyResponse: p.modifyResponse,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	p.serve(ln)
	return p, nil
}

// URL is the proxy's base URL, to give a client as its S3 endpoint. It
// stays the same across Refuse.
func (p *Proxy) URL() string { return "http://" + p.addr }

// Name is the proxy's name.
func (p *Proxy) Name() string { return p.opt.Name }

// Faults returns the faults in force.
func (p *Proxy) Faults() Faults {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faults
}

// Set replaces the faults in force. Leaving BlackHole lets the held
// connections go (closed, unanswered); entering Refuse closes the listener
// and every connection, and leaving it listens again on the same address.
func (p *Proxy) Set(f Faults) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("faultproxy: closed")
	}
	old := p.faults
	p.faults = f
	if old.Mode == BlackHole && f.Mode != BlackHole {
		close(p.healed)
	}
	if f.Mode == BlackHole && old.Mode != BlackHole {
		p.healed = make(chan struct{})
	}
	if f.Mode == Refuse && old.Mode != Refuse {
		p.shutdownLocked()
	}
	if f.Mode != Refuse && old.Mode == Refuse {
		// The port was ours a moment ago; another process may take it
		// meanwhile, so try a few times.
		var ln net.Listener
		var err error
		for range 50 {
			if ln, err = net.Listen("tcp", p.addr); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("faultproxy: listen again on %s: %w", p.addr, err)
		}
		p.serveLocked(ln)
	}
	return nil
}

// Update changes the faults in force with fn.
func (p *Proxy) Update(fn func(*Faults)) error {
	f := p.Faults()
	fn(&f)
	return p.Set(f)
}

// Close stops the proxy: held connections are closed, and writes held to
// be applied late are dropped (never forwarded).
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.stop)
	if p.faults.Mode == BlackHole {
		close(p.healed)
	}
	p.faults = Faults{}
	p.shutdownLocked()
	p.mu.Unlock()
	p.serving.Wait()
	p.late.Wait()
	p.rp.Transport.(*http.Transport).CloseIdleConnections()
	return nil
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.serveLocked(ln)
}

func (p *Proxy) serveLocked(ln net.Listener) {
	srv := &http.Server{
		Handler:           p,
		ReadHeaderTimeout: time.Minute,
		ConnState: func(c net.Conn, st http.ConnState) {
			p.connMu.Lock()
			defer p.connMu.Unlock()
			switch st {
			case http.StateNew:
				p.conns[c] = struct{}{}
			case http.StateClosed, http.StateHijacked:
				delete(p.conns, c)
			}
		},
		ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelError),
	}
	p.ln, p.srv = ln, srv
	p.serving.Add(1)
	go func() {
		defer p.serving.Done()
		_ = srv.Serve(ln)
	}()
}

// shutdownLocked closes the listener and every connection at once.
func (p *Proxy) shutdownLocked() {
	if p.srv != nil {
		_ = p.srv.Close()
		p.srv, p.ln = nil, nil
	}
	p.connMu.Lock()
	defer p.connMu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	f := p.faults
	healed := p.healed
	late := false
	if f.LateP > 0 && f.LateBy > 0 && isLateCandidate(r) {
		late = p.rnd.Float64() < f.LateP
	}
	p.mu.Unlock()

	switch f.Mode {
	case BlackHole:
		p.holdUnanswered(w, r, healed)
		return
	case Refuse:
		// A request that slipped in before the listener closed.
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
			}
		}
		return
	}
	if f.Latency > 0 {
		select {
		case <-time.After(f.Latency):
		case <-r.Context().Done():
			return
		case <-p.stop:
			return
		}
	}
	write := isWrite(r)
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		var src io.Reader = r.Body
		if f.Bandwidth > 0 {
			src = &slowReader{r: r.Body, rate: f.Bandwidth, ctx: r.Context()}
		}
		var err error
		if body, err = io.ReadAll(src); err != nil {
			return // the client went away
		}
		r.Body.Close()
	}
	rec := Write{Proxy: p.opt.Name, Method: r.Method, Key: strings.TrimPrefix(r.URL.Path, "/"), Query: r.URL.RawQuery, Size: int64(len(body)), Start: time.Now(), Late: late}
	rec.Conditional = conditionalHeaders(r.Header)
	if r.Method == http.MethodPut {
		sum := sha256.Sum256(body)
		rec.Hash = hex.EncodeToString(sum[:])
	}
	if f.StripConditional && rec.Conditional != "" {
		if err := p.strip(r); err != nil {
			p.opt.Log.Warn("faultproxy: conditional headers kept", "proxy", p.opt.Name, "key", rec.Key, "err", err)
		} else {
			rec.Stripped = true
		}
	}
	if late {
		p.applyLate(w, r, body, rec, f.LateBy, healed)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	rw := &recorder{ResponseWriter: w}
	p.rp.ServeHTTP(rw, r)
	if write {
		rec.Status, rec.End = rw.status, time.Now()
		if rec.Hash == "" && r.Method == http.MethodPost {
			rec.Hash = "etag:" + rw.etag
		}
		p.report(rec)
	}
}

// holdUnanswered keeps the request's connection open and silent until the
// black hole ends or the proxy closes, then drops it.
func (p *Proxy) holdUnanswered(w http.ResponseWriter, r *http.Request, healed chan struct{}) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		<-healed
		return
	}
	c, _, err := hj.Hijack()
	if err != nil {
		return
	}
	select {
	case <-healed:
	case <-p.stop:
	}
	_ = c.Close()
}

// applyLate holds a write: the client's request stays unanswered, and the
// write is forwarded by after it arrived on a context of its own, as a
// slow network or server applies a request whose sender gave up long ago.
func (p *Proxy) applyLate(w http.ResponseWriter, r *http.Request, body []byte, rec Write, by time.Duration, healed chan struct{}) {
	out := r.Clone(context.Background())
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = p.target.Scheme, p.target.Host
	out.Host = r.Host
	done := make(chan struct{})
	p.late.Add(1)
	go func() {
		defer p.late.Done()
		defer close(done)
		select {
		case <-time.After(by):
		case <-p.stop:
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		resp, err := p.rp.Transport.RoundTrip(out.WithContext(ctx))
		rec.End = time.Now()
		if err != nil {
			p.opt.Log.Warn("faultproxy: late write failed", "proxy", p.opt.Name, "key", rec.Key, "err", err)
			p.report(rec)
			return
		}
		rec.Status = resp.StatusCode
		if rec.Hash == "" && r.Method == http.MethodPost {
			rec.Hash = "etag:" + strings.Trim(resp.Header.Get("ETag"), `"`)
			if rec.Hash == "etag:" {
				// CompleteMultipartUpload answers its ETag in the body.
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
				rec.Hash = "etag:" + xmlETag(b)
			}
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		p.report(rec)
	}()
	// The client hears nothing: it times out, or the connection is closed
	// when the proxy stops.
	select {
	case <-r.Context().Done():
	case <-done:
		w.WriteHeader(http.StatusGatewayTimeout)
	}
}

func (p *Proxy) report(rec Write) {
	if p.opt.OnWrite != nil {
		p.opt.OnWrite(rec)
	}
}

// strip removes the conditional headers and signs the request again.
func (p *Proxy) strip(r *http.Request) error {
	hash := r.Header.Get("X-Amz-Content-Sha256")
	if hash == "" || strings.HasPrefix(hash, "STREAMING-AWS4-HMAC-SHA256") {
		// Chunk signatures chain from the request's signature: they
		// cannot be made again here.
		return fmt.Errorf("payload %q cannot be signed again", hash)
	}
	r.Header.Del("If-Match")
	r.Header.Del("If-None-Match")
	r.Header.Del("Authorization")
	r.Header.Del("X-Amz-Date")
	// The signer reads the URL's host; the client signed the Host header.
	u := *r.URL
	u.Scheme, u.Host = "http", r.Host
	sr := &http.Request{Method: r.Method, URL: &u, Header: r.Header, Host: r.Host, ContentLength: r.ContentLength}
	creds := aws.Credentials{AccessKeyID: p.opt.AccessKey, SecretAccessKey: p.opt.SecretKey}
	if err := p.signer.SignHTTP(context.Background(), creds, sr, hash, "s3", p.opt.Region, time.Now().UTC()); err != nil {
		return fmt.Errorf("sign again: %w", err)
	}
	return nil
}

func (p *Proxy) modifyResponse(resp *http.Response) error {
	p.mu.Lock()
	skew := p.faults.DateSkew
	p.mu.Unlock()
	if skew != 0 {
		d, err := http.ParseTime(resp.Header.Get("Date"))
		if err != nil {
			d = time.Now()
		}
		resp.Header.Set("Date", d.Add(skew).UTC().Format(http.TimeFormat))
	}
	return nil
}

// isWrite says whether r changes an object: PUT, multipart completion,
// DELETE (one object or many).
func isWrite(r *http.Request) bool {
	switch r.Method {
	case http.MethodPut, http.MethodDelete:
		return true
	case http.MethodPost:
		q := r.URL.Query()
		return q.Has("uploadId") || q.Has("delete")
	}
	return false
}

// isLateCandidate says whether r may be applied late: a PUT of an LTX file
// or a multipart completion, the writes whose late arrival can land over
// another host's history.
func isLateCandidate(r *http.Request) bool {
	switch r.Method {
	case http.MethodPut:
		return strings.HasSuffix(r.URL.Path, ".ltx") && !r.URL.Query().Has("partNumber")
	case http.MethodPost:
		return r.URL.Query().Has("uploadId")
	}
	return false
}

func conditionalHeaders(h http.Header) string {
	var out []string
	for _, k := range []string{"If-Match", "If-None-Match"} {
		if v := h.Get(k); v != "" {
			out = append(out, k+": "+v)
		}
	}
	return strings.Join(out, ", ")
}

func xmlETag(b []byte) string {
	s := string(b)
	i := strings.Index(s, "<ETag>")
	j := strings.Index(s, "</ETag>")
	if i < 0 || j < i {
		return ""
	}
	return strings.Trim(strings.ReplaceAll(s[i+6:j], "&#34;", `"`), `"`)
}

// recorder keeps the status and ETag of the proxied response.
type recorder struct {
	http.ResponseWriter
	status int
	etag   string
	body   bytes.Buffer // the start of a POST's answer, for its ETag
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
		w.etag = strings.Trim(w.Header().Get("ETag"), `"`)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.etag == "" && w.body.Len() < 1<<16 {
		w.body.Write(b)
		w.etag = xmlETag(w.body.Bytes())
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// slowReader reads at most rate bytes per second.
type slowReader struct {
	r    io.Reader
	rate int
	ctx  context.Context
}

func (s *slowReader) Read(b []byte) (int, error) {
	chunk := max(s.rate/10, 512)
	if len(b) > chunk {
		b = b[:chunk]
	}
	n, err := s.r.Read(b)
	if n > 0 {
		select {
		case <-time.After(time.Duration(n) * time.Second / time.Duration(s.rate)):
		case <-s.ctx.Done():
			return n, s.ctx.Err()
		}
	}
	return n, err
}
