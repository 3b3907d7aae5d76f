package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	appMain() // this binary runs again as the tenants' applications
	os.Exit(m.Run())
}

// TestChaosShort is the fixed-seed run of `make test`: about three
// minutes of faults over three hosts and four tenants, then the four
// invariants, every one of which must hold.
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("a three-minute fault run")
	}
	bin := filepath.Join(t.TempDir(), "litefleet")
	build := exec.Command("go", "build", "-o", bin, "./cmd/litefleet")
	build.Dir = repoRoot()
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build litefleet: %v\n%s", err, out)
	}
	cfg := defaultConfig()
	cfg.Seed = 3
	cfg.Duration = 2 * time.Minute
	cfg.Tenants = 4
	cfg.BigMB = 4
	cfg.Settle = 45 * time.Second
	cfg.Litefleet = bin
	cfg.Work = filepath.Join(t.TempDir(), "work")
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	res, err := run(ctx, cfg, io.MultiWriter(&out, testWriter{t}))
	if err != nil {
		t.Fatalf("the run could not be made: %v", err)
	}
	if res.Failed > 0 {
		t.Errorf("%s", res.Summary)
	}
	if !strings.Contains(out.String(), "invariants: ") {
		t.Error("no summary line")
	}
}

// testWriter logs each line of the run as it comes.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
