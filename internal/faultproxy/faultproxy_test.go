package faultproxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// backend is a stand-in server that records the headers it was sent.
func backend(t *testing.T) (*httptest.Server, func() []http.Header) {
	var mu sync.Mutex
	var seen []http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		w.Header().Set("ETag", `"abc"`)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []http.Header {
		mu.Lock()
		defer mu.Unlock()
		return append([]http.Header(nil), seen...)
	}
}

func start(t *testing.T, target string, onWrite func(Write)) *Proxy {
	p, err := Start(Options{Name: "p", Target: target, AccessKey: "k", SecretKey: "s", OnWrite: onWrite})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func put(url string, hdr map[string]string, timeout time.Duration) (*http.Response, error) {
	req, _ := http.NewRequest(http.MethodPut, url, strings.NewReader("body"))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	return resp, err
}

func TestModes(t *testing.T) {
	srv, _ := backend(t)
	p := start(t, srv.URL, nil)
	if _, err := put(p.URL()+"/b/k", nil, 2*time.Second); err != nil {
		t.Fatalf("pass: %v", err)
	}
	if err := p.Set(Faults{Mode: BlackHole}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := put(p.URL()+"/b/k", nil, 500*time.Millisecond)
	if err == nil || time.Since(start) < 400*time.Millisecond {
		t.Fatalf("black hole answered: %v after %s", err, time.Since(start))
	}
	if err := p.Set(Faults{Mode: Refuse}); err != nil {
		t.Fatal(err)
	}
	if _, err := put(p.URL()+"/b/k", nil, 2*time.Second); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("refuse: %v", err)
	}
	if err := p.Set(Faults{}); err != nil {
		t.Fatal(err)
	}
	if _, err := put(p.URL()+"/b/k", nil, 2*time.Second); err != nil {
		t.Fatalf("healed: %v", err)
	}
}

func TestDateSkewAndStrip(t *testing.T) {
	srv, seen := backend(t)
	var mu sync.Mutex
	var writes []Write
	p := start(t, srv.URL, func(w Write) { mu.Lock(); writes = append(writes, w); mu.Unlock() })
	_ = p.Set(Faults{DateSkew: 120 * time.Second, StripConditional: true})
	resp, err := put(p.URL()+"/b/k.ltx", map[string]string{
		"If-None-Match": "*", "X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD", "Authorization": "AWS4-HMAC-SHA256 Credential=k/x, SignedHeaders=host, Signature=0",
	}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := http.ParseTime(resp.Header.Get("Date"))
	if skew := time.Until(d); skew < 100*time.Second || skew > 140*time.Second {
		t.Errorf("Date skewed by %s, want 120s", skew)
	}
	h := seen()[0]
	if h.Get("If-None-Match") != "" || !strings.Contains(h.Get("Authorization"), "Credential=k/") || strings.HasSuffix(h.Get("Authorization"), "Signature=0") {
		// The proxy signs again, so the old one-digit signature must be gone; a new
		// signature may well begin with 0.
		t.Errorf("conditional header not stripped or request not signed again: %v", h)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(writes) != 1 || !writes[0].Stripped || writes[0].Status != 200 || writes[0].Hash == "" {
		t.Errorf("writes = %+v", writes)
	}
}

func TestLateWrite(t *testing.T) {
	srv, seen := backend(t)
	got := make(chan Write, 1)
	p := start(t, srv.URL, func(w Write) { got <- w })
	_ = p.Set(Faults{LateP: 1, LateBy: time.Second})
	_, err := put(p.URL()+"/b/0000/1-1.ltx", nil, 300*time.Millisecond)
	if err == nil {
		t.Fatal("a held write was answered")
	}
	if n := len(seen()); n != 0 {
		t.Fatalf("the server saw the write at once (%d)", n)
	}
	select {
	case w := <-got:
		if !w.Late || w.Status != 200 || w.End.Sub(w.Start) < 900*time.Millisecond {
			t.Errorf("late write = %+v", w)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the held write was never applied")
	}
}
