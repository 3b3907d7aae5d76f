// Package s3proxy is a request-counting HTTP reverse proxy for an S3
// server on 127.0.0.1: a replicator's -endpoint points at the proxy, and a
// benchmark or test reads how many requests of each kind it sent, and when
// each one started and ended.
//
// Requests are counted by the S3 pricing classes they fall in (LIST, GET,
// HEAD, PUT, DELETE, and OTHER for bucket configuration and the like), and
// separately for keys under litefleet's control prefix (.litefleet/:
// heartbeats, host records), which cost per host, not per tenant.
//
// The proxy expects path-style requests (http://HOST/BUCKET/KEY), which
// the AWS SDK sends with a custom endpoint and path-style addressing, as
// litefleet and Litestream both do. It forwards every request unchanged,
// Host header included, so that SigV4 signatures stay valid. For fault
// tests it can drop a request, drop the answer of one that reached the
// server, delay one (Options.Fault), and limit the uplink's bandwidth
// (Options.Uplink); it never rewrites a header, which would break the
// signature.
package s3proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/litefleet/litefleet/layout"
)

// Kind is the class of an S3 request.
type Kind int

// The kinds, in the order S3 prices them (LIST and PUT share a price; GET
// and HEAD another).
const (
	List   Kind = iota // ListObjects(V2), ListObjectVersions, ListMultipartUploads, ListParts
	Get                // GetObject
	Head               // HeadObject, HeadBucket
	Put                // PutObject, UploadPart, CopyObject, Create/CompleteMultipartUpload
	Delete             // DeleteObject, DeleteObjects (POST ?delete), AbortMultipartUpload
	Other              // bucket configuration, CreateBucket, ListBuckets, anything else
	NumKinds
)

var kindNames = [NumKinds]string{"LIST", "GET", "HEAD", "PUT", "DELETE", "OTHER"}

func (k Kind) String() string {
	if k < 0 || k >= NumKinds {
		return fmt.Sprintf("Kind(%d)", int(k))
	}
	return kindNames[k]
}

// Counts are request counts by kind.
type Counts [NumKinds]int64

// Total is the sum over every kind.
func (c Counts) Total() int64 {
	var n int64
	for _, v := range c {
		n += v
	}
	return n
}

// Sub returns c - prev, kind by kind.
func (c Counts) Sub(prev Counts) Counts {
	for k := range c {
		c[k] -= prev[k]
	}
	return c
}

// Snapshot is what the proxy has counted since it started.
type Snapshot struct {
	// Data counts requests on everything but the control prefix: tenants'
	// LTX files, claims, listings of their prefixes.
	Data Counts
	// Control counts requests on keys (or listings of prefixes) under the
	// control prefix.
	Control Counts
	// ClientErrors and ServerErrors count responses with a 4xx and a 5xx
	// status; a request the server could not be reached for counts as a
	// 502 from the proxy.
	ClientErrors, ServerErrors int64
}

// Sub returns the requests counted between prev and s.
func (s Snapshot) Sub(prev Snapshot) Snapshot {
	return Snapshot{
		Data:         s.Data.Sub(prev.Data),
		Control:      s.Control.Sub(prev.Control),
		ClientErrors: s.ClientErrors - prev.ClientErrors,
		ServerErrors: s.ServerErrors - prev.ServerErrors,
	}
}

// Request describes one proxied request, for Options.Hook.
type Request struct {
	Method string
	Kind   Kind
	Bucket string
	// Key is the object key; for a listing, the prefix listed.
	Key string
	// Control is true for requests on the control prefix.
	Control bool
	// Start is when the proxy received the request; End when it had
	// written the whole response back to the client.
	Start, End time.Time
	Status     int
	// Query is the request's raw query (partNumber, uploadId, ...).
	Query string
}

// Fault is what the proxy does to one request instead of forwarding it
// plainly (Options.Fault).
type Fault struct {
	// Drop closes the client's connection without forwarding the
	// request: a connection broken before the server saw anything.
	Drop bool
	// DropResponse forwards the request, lets the server answer, and
	// closes the client's connection without passing the answer on: a
	// write that landed although its client saw it fail.
	DropResponse bool
	// Delay holds the request this long before forwarding it.
	Delay time.Duration
	// Status, 400 or more, answers the request at once with an S3 error
	// of that status, and the request never reaches the server, as a
	// failing S3 does.
	Status int
}

// Options configure a proxy.
type Options struct {
	// Target is the S3 server's base URL, e.g. http://127.0.0.1:7070.
	Target string
	// Hook, if set, is called once per request after its response has been
	// written, from the request's own goroutine: it must be safe for
	// concurrent use, and quick.
	Hook func(Request)
	// ControlPrefix is the key prefix counted apart; litefleet's
	// .litefleet/ by default.
	ControlPrefix string
	// Fault, if set, is asked before each request is forwarded (Start set,
	// End and Status not yet) what to do to it; the zero Fault forwards
	// it. It must be safe for concurrent use.
	Fault func(Request) Fault
	// Uplink, if positive, limits the bytes per second of every request
	// body together, as a slow link from the client to S3 would.
	Uplink int64
	// DateSkew, when not zero, moves the Date header of every response by
	// that much, as a proxy or an S3 node with its own clock would.
	DateSkew time.Duration
	// IgnoreConditions makes the server look like one that ignores
	// conditional writes: If-Match and If-None-Match are dropped from
	// every PUT, POST and DELETE. The SDK signs them, so the request is
	// signed again with AccessKeyID and SecretAccessKey.
	IgnoreConditions             bool
	AccessKeyID, SecretAccessKey string
}

// Proxy is a running request-counting proxy.
type Proxy struct {
	opt     Options
	ln      net.Listener
	srv     *http.Server
	rp      *httputil.ReverseProxy
	data    [NumKinds]atomic.Int64
	control [NumKinds]atomic.Int64
	status4 atomic.Int64
	status5 atomic.Int64
	done    chan struct{}
	uplink  *limiter
}

// Start starts a proxy on a free port of 127.0.0.1 in front of
// opt.Target.
func Start(opt Options) (*Proxy, error) {
	target, err := url.Parse(opt.Target)
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		return nil, fmt.Errorf("s3proxy: target %q: give the S3 server's base URL, e.g. http://127.0.0.1:7070", opt.Target)
	}
	if opt.ControlPrefix == "" {
		opt.ControlPrefix = layout.Root
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("s3proxy: listen: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// A fleet's replicator keeps many connections open; reusing them keeps
	// the proxy from adding connection setup to every request it times.
	tr.MaxIdleConns = 0
	tr.MaxIdleConnsPerHost = 4096
	tr.DisableCompression = true
	tr.Proxy = nil
	p := &Proxy{opt: opt, ln: ln, done: make(chan struct{})}
	if opt.Uplink > 0 {
		p.uplink = &limiter{rate: opt.Uplink}
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// The signature covers the Host header the client sent.
			pr.Out.Host = pr.In.Host
			if opt.IgnoreConditions && pr.Out.Method != http.MethodGet && pr.Out.Method != http.MethodHead &&
				(pr.Out.Header.Get("If-Match") != "" || pr.Out.Header.Get("If-None-Match") != "") {
				pr.Out.Header.Del("If-Match")
				pr.Out.Header.Del("If-None-Match")
				resign(pr.Out, opt.AccessKeyID, opt.SecretAccessKey)
			}
		},
		Transport: tr,
		ModifyResponse: func(resp *http.Response) error {
			if opt.DateSkew == 0 {
				return nil
			}
			at := time.Now()
			if d, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
				at = d
			}
			resp.Header.Set("Date", at.Add(opt.DateSkew).UTC().Format(http.TimeFormat))
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: time.Minute}
	go func() {
		defer close(p.done)
		_ = p.srv.Serve(ln)
	}()
	return p, nil
}

// resign signs r again (SigV4) after its signed headers changed, in the
// region its Authorization header named. A request that cannot be signed
// goes on as it is, and the server refuses it.
func resign(r *http.Request, key, secret string) {
	region := "us-east-1"
	if _, cred, ok := strings.Cut(r.Header.Get("Authorization"), "Credential="); ok {
		if parts := strings.Split(strings.SplitN(cred, ",", 2)[0], "/"); len(parts) >= 3 {
			region = parts[2]
		}
	}
	hash := r.Header.Get("X-Amz-Content-Sha256")
	if hash == "" {
		hash = "UNSIGNED-PAYLOAD"
	}
	r.Header.Del("Authorization")
	r.Header.Del("X-Amz-Date")
	_ = v4.NewSigner().SignHTTP(r.Context(), aws.Credentials{AccessKeyID: key, SecretAccessKey: secret}, r, hash, "s3", region, time.Now())
}

// URL is the proxy's base URL, to give a client as its S3 endpoint.
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

// Snapshot returns the counts so far.
func (p *Proxy) Snapshot() Snapshot {
	var s Snapshot
	for k := range NumKinds {
		s.Data[k] = p.data[k].Load()
		s.Control[k] = p.control[k].Load()
	}
	s.ClientErrors = p.status4.Load()
	s.ServerErrors = p.status5.Load()
	return s
}

// Close stops the proxy, waiting up to ten seconds for requests in flight.
func (p *Proxy) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := p.srv.Shutdown(ctx)
	<-p.done
	if errors.Is(err, context.DeadlineExceeded) {
		err = p.srv.Close()
	}
	p.rp.Transport.(*http.Transport).CloseIdleConnections()
	return err
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	kind, bucket, key := Classify(r)
	control := strings.HasPrefix(key, p.opt.ControlPrefix)
	var fault Fault
	if p.opt.Fault != nil {
		fault = p.opt.Fault(Request{Method: r.Method, Kind: kind, Bucket: bucket, Key: key, Control: control, Start: start, Query: r.URL.RawQuery})
	}
	if fault.Delay > 0 {
		select {
		case <-time.After(fault.Delay):
		case <-r.Context().Done():
		}
	}
	if p.uplink != nil && r.Body != nil && r.Body != http.NoBody {
		r.Body = &slowBody{ReadCloser: r.Body, l: p.uplink, ctx: r.Context()}
	}
	rec := &statusWriter{ResponseWriter: w}
	switch {
	case fault.Status >= 400:
		rec.Header().Set("Content-Type", "application/xml")
		rec.WriteHeader(fault.Status)
		fmt.Fprintf(rec, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>injected by s3proxy</Message></Error>", faultCode(fault.Status))
	case fault.Drop:
		rec.status = http.StatusBadGateway
		hangUp(w)
	case fault.DropResponse:
		lost := &statusWriter{ResponseWriter: discard{}}
		p.rp.ServeHTTP(lost, r)
		rec.status = lost.status
		hangUp(w)
	default:
		p.rp.ServeHTTP(rec, r)
	}
	end := time.Now()
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	if control {
		p.control[kind].Add(1)
	} else {
		p.data[kind].Add(1)
	}
	switch {
	case status >= 500:
		p.status5.Add(1)
	case status >= 400:
		p.status4.Add(1)
	}
	if p.opt.Hook != nil {
		p.opt.Hook(Request{Method: r.Method, Kind: kind, Bucket: bucket, Key: key, Control: control, Start: start, End: end, Status: status, Query: r.URL.RawQuery})
	}
}

// hangUp closes the client's connection without an answer.
func hangUp(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // closes the connection just as well
	}
	_ = conn.Close()
}

// discard is a ResponseWriter that keeps nothing: the answer of a request
// whose response is dropped.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

// limiter spreads bytes over time at rate bytes per second, for every
// request body together.
type limiter struct {
	rate int64
	mu   sync.Mutex
	next time.Time // when the link is free again
}

// wait blocks until n more bytes may pass.
func (l *limiter) wait(ctx context.Context, n int) error {
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	l.next = l.next.Add(time.Duration(int64(n) * int64(time.Second) / l.rate))
	at := l.next
	l.mu.Unlock()
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// slowBody is a request body read through the uplink's limiter.
type slowBody struct {
	io.ReadCloser
	l   *limiter
	ctx context.Context // the request's: a client gone stops the wait
}

func (b *slowBody) Read(p []byte) (int, error) {
	if len(p) > 16<<10 {
		p = p[:16<<10]
	}
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		if werr := b.l.wait(b.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}

// faultCode is the S3 error code an injected status is answered with.
func faultCode(status int) string {
	switch status {
	case http.StatusServiceUnavailable:
		return "ServiceUnavailable"
	case http.StatusForbidden:
		return "AccessDenied"
	case http.StatusNotFound:
		return "NoSuchKey"
	case http.StatusBadRequest:
		return "InvalidRequest" // not retried by the SDK: one request, one failure
	}
	return "InternalError"
}

// statusWriter remembers the status the proxied response was sent with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	// 1xx are interim (100 Continue); the final status comes after.
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the server's writer (flushes).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// listParams are the query parameters of a bucket listing; a GET on a
// bucket with none of them and no other parameter is a ListObjects (v1)
// too.
var listParams = []string{"list-type", "prefix", "delimiter", "continuation-token", "start-after", "marker",
	"max-keys", "encoding-type", "fetch-owner", "versions", "uploads"}

// Classify returns a path-style request's kind, bucket and key (for a
// listing, the prefix listed).
func Classify(r *http.Request) (kind Kind, bucket, key string) {
	path := strings.TrimPrefix(r.URL.Path, "/")
	bucket, key, hasKey := strings.Cut(path, "/")
	hasKey = hasKey && key != ""
	q := r.URL.Query()
	switch r.Method {
	case http.MethodHead:
		return Head, bucket, key
	case http.MethodGet:
		switch {
		case bucket == "":
			return Other, "", "" // ListBuckets
		case hasKey && q.Has("uploadId"):
			return List, bucket, key // ListParts
		case hasKey:
			return Get, bucket, key
		case len(q) == 0:
			return List, bucket, ""
		}
		for _, p := range listParams {
			if q.Has(p) {
				return List, bucket, q.Get("prefix")
			}
		}
		return Other, bucket, ""
	case http.MethodPut:
		if hasKey {
			return Put, bucket, key // objects, parts, copies
		}
		return Other, bucket, ""
	case http.MethodPost:
		switch {
		case !hasKey && q.Has("delete"):
			return Delete, bucket, ""
		case hasKey && (q.Has("uploads") || q.Has("uploadId")):
			return Put, bucket, key
		}
		return Other, bucket, key
	case http.MethodDelete:
		if hasKey {
			return Delete, bucket, key
		}
		return Other, bucket, ""
	}
	return Other, bucket, key
}
