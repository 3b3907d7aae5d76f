package s3proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		method, target string
		kind           Kind
		bucket, key    string
	}{
		{"GET", "/b?list-type=2&prefix=databases%2Fa%2F0000%2F", List, "b", "databases/a/0000/"},
		{"GET", "/b?prefix=.litefleet%2Fhosts%2F&delimiter=%2F", List, "b", ".litefleet/hosts/"},
		{"GET", "/b/", List, "b", ""},
		{"GET", "/b?uploads", List, "b", ""},
		{"GET", "/b?location", Other, "b", ""},
		{"GET", "/", Other, "", ""},
		{"GET", "/b/databases/a/0000/0000000000000001-0000000000000001.ltx", Get, "b", "databases/a/0000/0000000000000001-0000000000000001.ltx"},
		{"GET", "/b/big?uploadId=u1", List, "b", "big"},
		{"HEAD", "/b/databases/a/lock.json", Head, "b", "databases/a/lock.json"},
		{"HEAD", "/b", Head, "b", ""},
		{"PUT", "/b/.litefleet/hosts/h/heartbeat.json", Put, "b", ".litefleet/hosts/h/heartbeat.json"},
		{"PUT", "/b/big?partNumber=2&uploadId=u1", Put, "b", "big"},
		{"PUT", "/b", Other, "b", ""},
		{"PUT", "/b?policy", Other, "b", ""},
		{"POST", "/b/big?uploads", Put, "b", "big"},
		{"POST", "/b/big?uploadId=u1", Put, "b", "big"},
		{"POST", "/b?delete", Delete, "b", ""},
		{"DELETE", "/b/databases/a/0000/x.ltx", Delete, "b", "databases/a/0000/x.ltx"},
		{"DELETE", "/b/big?uploadId=u1", Delete, "b", "big"},
		{"DELETE", "/b", Other, "b", ""},
		{"PATCH", "/b/k", Other, "b", "k"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, tt.target, nil)
		kind, bucket, key := Classify(r)
		if kind != tt.kind || bucket != tt.bucket || key != tt.key {
			t.Errorf("%s %s: got %s %q %q, want %s %q %q", tt.method, tt.target, kind, bucket, key, tt.kind, tt.bucket, tt.key)
		}
	}
}

// backend is an S3 stand-in that records what reached it.
type backend struct {
	mu   sync.Mutex
	seen []string             // METHOD URI Host body
	done map[string]time.Time // URI -> when its handler returned
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	b.seen = append(b.seen, r.Method+" "+r.URL.RequestURI()+" "+r.Host+" "+string(body))
	b.mu.Unlock()
	switch {
	case strings.Contains(r.URL.Path, "missing"):
		http.Error(w, "NoSuchKey", http.StatusNotFound)
	case strings.Contains(r.URL.Path, "broken"):
		http.Error(w, "InternalError", http.StatusInternalServerError)
	default:
		w.Header().Set("ETag", `"e1"`)
		_, _ = io.WriteString(w, "reply to "+r.Method)
	}
	b.mu.Lock()
	b.done[r.URL.RequestURI()] = time.Now()
	b.mu.Unlock()
}

func TestProxyForwardsCountsAndReports(t *testing.T) {
	be := &backend{done: map[string]time.Time{}}
	srv := httptest.NewServer(be)
	defer srv.Close()
	var mu sync.Mutex
	var reqs []Request
	p, err := Start(Options{Target: srv.URL, Hook: func(r Request) {
		mu.Lock()
		reqs = append(reqs, r)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	do := func(method, uri, body string) (int, string, http.Header) {
		t.Helper()
		req, err := http.NewRequest(method, p.URL()+uri, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "s3.example:9000" // what the client signed
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}

	before := p.Snapshot()
	if code, body, hdr := do("PUT", "/b/databases/t1/0000/0000000000000001-0000000000000001.ltx", "ltx bytes"); code != 200 || body != "reply to PUT" || hdr.Get("ETag") != `"e1"` {
		t.Fatalf("PUT through the proxy: %d %q %v", code, body, hdr)
	}
	do("GET", "/b?list-type=2&prefix=databases%2Ft1%2F", "")
	do("GET", "/b/databases/t1/missing", "")
	do("PUT", "/b/.litefleet/hosts/h/heartbeat.json", "beat")
	do("GET", "/b?list-type=2&prefix=.litefleet%2Fhosts%2F", "")
	do("POST", "/b?delete", "<Delete/>")
	do("HEAD", "/b/broken", "")
	mid := p.Snapshot()
	do("PUT", "/b/databases/t1/lock.json", "{}")
	after := p.Snapshot()

	wantSeen := []string{
		"PUT /b/databases/t1/0000/0000000000000001-0000000000000001.ltx s3.example:9000 ltx bytes",
		"GET /b?list-type=2&prefix=databases%2Ft1%2F s3.example:9000 ",
		"GET /b/databases/t1/missing s3.example:9000 ",
		"PUT /b/.litefleet/hosts/h/heartbeat.json s3.example:9000 beat",
		"GET /b?list-type=2&prefix=.litefleet%2Fhosts%2F s3.example:9000 ",
		"POST /b?delete s3.example:9000 <Delete/>",
		"HEAD /b/broken s3.example:9000 ",
		"PUT /b/databases/t1/lock.json s3.example:9000 {}",
	}
	be.mu.Lock()
	if strings.Join(be.seen, "\n") != strings.Join(wantSeen, "\n") {
		t.Errorf("the server received:\n%s\nwant (unchanged requests, Host kept):\n%s", strings.Join(be.seen, "\n"), strings.Join(wantSeen, "\n"))
	}
	be.mu.Unlock()

	got := mid.Sub(before)
	want := Snapshot{
		Data:         Counts{List: 1, Get: 1, Head: 1, Put: 1, Delete: 1},
		Control:      Counts{List: 1, Put: 1},
		ClientErrors: 1, ServerErrors: 1,
	}
	if got != want {
		t.Errorf("counts: got %+v, want %+v", got, want)
	}
	if d := after.Sub(mid); d != (Snapshot{Data: Counts{Put: 1}}) {
		t.Errorf("delta of one PUT: got %+v", d)
	}
	if got.Data.Total() != 5 || got.Control.Total() != 2 {
		t.Errorf("totals: %d data, %d control; want 5, 2", got.Data.Total(), got.Control.Total())
	}

	mu.Lock()
	defer mu.Unlock()
	if len(reqs) != 8 {
		t.Fatalf("hook called %d times, want 8", len(reqs))
	}
	first := reqs[0]
	if first.Method != "PUT" || first.Kind != Put || first.Bucket != "b" || first.Key != "databases/t1/0000/0000000000000001-0000000000000001.ltx" || first.Control || first.Status != 200 {
		t.Errorf("hook's first request: %+v", first)
	}
	be.mu.Lock()
	served := be.done["/b/databases/t1/0000/0000000000000001-0000000000000001.ltx"]
	be.mu.Unlock()
	if first.Start.After(served) || first.End.Before(served) {
		t.Errorf("hook's interval %s..%s does not contain the server's reply at %s", first.Start, first.End, served)
	}
	if r := reqs[3]; !r.Control || r.Kind != Put {
		t.Errorf("heartbeat PUT: %+v, want a control PUT", r)
	}
	if r := reqs[2]; r.Status != 404 || r.Kind != Get {
		t.Errorf("missing key: %+v, want a GET answered 404", r)
	}
}

func TestProxyServerDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	p, err := Start(Options{Target: url})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	resp, err := http.Get(p.URL() + "/b/k")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d, want 502", resp.StatusCode)
	}
	if s := p.Snapshot(); s.ServerErrors != 1 || s.Data[Get] != 1 {
		t.Errorf("counts %+v: want one GET counted as a server error", s)
	}
}

func TestStartRejectsBadTarget(t *testing.T) {
	for _, target := range []string{"", "127.0.0.1:9000", "ftp://x/"} {
		if p, err := Start(Options{Target: target}); err == nil {
			p.Close()
			t.Errorf("target %q accepted", target)
		} else if !strings.Contains(err.Error(), "base URL") {
			t.Errorf("target %q: %v: want an error that says what to give", target, err)
		}
	}
}

// TestProxyFaults: a dropped request never reaches the server; a dropped
// answer does, and its client sees a broken connection; the uplink limit
// spreads request bodies over time.
func TestProxyFaults(t *testing.T) {
	be := &backend{done: map[string]time.Time{}}
	srv := httptest.NewServer(be)
	defer srv.Close()
	var statuses sync.Map
	p, err := Start(Options{Target: srv.URL, Uplink: 64 << 10,
		Fault: func(r Request) Fault {
			switch r.Key {
			case "drop":
				return Fault{Drop: true}
			case "lost":
				return Fault{DropResponse: true}
			}
			return Fault{}
		},
		Hook: func(r Request) { statuses.Store(r.Key, r.Status) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	put := func(key string, body []byte) error {
		req, err := http.NewRequest("PUT", p.URL()+"/b/"+key, strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	if err := put("drop", []byte("x")); err == nil {
		t.Error("a dropped request was answered")
	}
	if err := put("lost", []byte("y")); err == nil {
		t.Error("a request whose answer was dropped was answered")
	}
	start := time.Now()
	if err := put("slow", make([]byte, 32<<10)); err != nil {
		t.Fatal(err)
	}
	// 32 KiB at 64 KiB/s: half a second at least (a lower bound only).
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("32 KiB went through a 64 KiB/s uplink in %s", d)
	}
	be.mu.Lock()
	seen := strings.Join(be.seen, "\n")
	be.mu.Unlock()
	if strings.Contains(seen, "/b/drop") || !strings.Contains(seen, "/b/lost") || !strings.Contains(seen, "/b/slow") {
		t.Errorf("the server received:\n%s\nwant lost and slow, not drop", seen)
	}
	if s, _ := statuses.Load("lost"); s != 200 {
		t.Errorf("hook status of the lost answer: %v, want the server's 200", s)
	}
}
