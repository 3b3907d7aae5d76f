package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestPprofServesGoroutines(t *testing.T) {
	addr, err := startPprof("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr.String() + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "goroutine profile: total ") {
		t.Errorf("goroutine profile: %d %.80q", resp.StatusCode, body)
	}
}

func TestPprofRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:6060", ":6060", "example.com:6060", "127.0.0.1"} {
		if _, err := startPprof(addr); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("%s=%q: %v, want a refusal naming a loopback address", envPprof, addr, err)
		}
	}
}
