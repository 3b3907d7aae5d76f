package replication

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSweepPaced: the periodic sweep stats sleeping tenants at most rate
// a second, pausing between chunks, and still finds a write the watcher
// missed; the sweep after an overflow (no rate) does not pause.
func TestSweepPaced(t *testing.T) {
	dir := t.TempDir()
	e := &Engine{byPath: map[string]*tenant{}, ctx: context.Background(), kick: make(chan struct{}, 1),
		opt: Options{Now: time.Now}, began: time.Now()}
	const n = 600
	var written *tenant
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("t%03d.db", i))
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		base, err := statIdentity(p)
		if err != nil {
			t.Fatal(err)
		}
		tn := &tenant{name: p, path: p, wanted: true, state: StateSleeping, base: base, stats: &tenantStats{}}
		e.byPath[p] = tn
		e.all = append(e.all, tn)
		if i == n-1 {
			written = tn
		}
	}
	if err := os.WriteFile(written.path, []byte("xy"), 0o600); err != nil {
		t.Fatal(err)
	}

	t0 := time.Now()
	e.sweepPaced(1000)
	// 600 tenants in chunks of 256: two pauses of 256 ms before the last chunk.
	if d := time.Since(t0); d < 500*time.Millisecond {
		t.Errorf("a sweep of %d tenants at 1,000 a second took %s: want the pauses (>= 512 ms)", n, d)
	}
	if !written.dirty || !written.queued {
		t.Errorf("the written tenant: dirty %v, queued %v: want the sweep to find the write", written.dirty, written.queued)
	}

	written.dirty, written.queued = false, false
	e.ready = nil
	if err := os.WriteFile(written.path, []byte("xyz"), 0o600); err != nil {
		t.Fatal(err)
	}
	written.base, _ = statIdentity(filepath.Join(dir, "t000.db")) // any other identity: changed
	t0 = time.Now()
	e.sweep()
	if d := time.Since(t0); d > 400*time.Millisecond {
		t.Logf("an unpaced sweep of %d tenants took %s (a loaded machine?)", n, d)
	}
	if !written.dirty {
		t.Error("the unpaced sweep did not find the write")
	}
}
