package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// blackHole is a loopback endpoint that accepts connections and never
// answers, as a hung S3 or a broken middlebox does.
func blackHole(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never read or written
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "http://" + l.Addr().String()
}

// TestBlackHoledEndpoint: ls, inspect and restore answer an endpoint that
// never answers with one line naming it, within 15 s.
func TestBlackHoledEndpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	ep := blackHole(t)
	env := append(os.Environ(), "AWS_ACCESS_KEY_ID=k", "AWS_SECRET_ACCESS_KEY=s")
	out := filepath.Join(t.TempDir(), "x.db")
	for _, args := range [][]string{
		{"ls", "-bucket", "bkt", "-endpoint", ep, "-no-cache"},
		{"inspect", guid1, "-bucket", "bkt", "-endpoint", ep},
		{"restore", guid1, "-o", out, "-bucket", "bkt", "-endpoint", ep},
	} {
		t.Run(args[0], func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			p := startLitefleet(t, env, args...)
			code := p.Wait(30 * time.Second)
			took := time.Since(start)
			text := strings.TrimSpace(p.Out.String())
			if code == 0 {
				t.Fatalf("exit 0 against a black hole:\n%s", text)
			}
			if took > 15*time.Second {
				t.Errorf("took %s, want under 15s", took.Round(time.Millisecond))
			}
			last := text[strings.LastIndex(text, "\n")+1:]
			if !strings.HasPrefix(last, "litefleet: ") || !strings.Contains(last, "did not answer") || !strings.Contains(last, ep) {
				t.Errorf("last line does not say what timed out and where: %q", last)
			}
		})
	}
}
