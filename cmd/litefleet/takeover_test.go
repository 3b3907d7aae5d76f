package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
)

// TestDeadHostTakenOver: host-a replicates a folder that host-b also
// serves (a shared disk, or a standby); host-b leaves host-a's tenants
// alone while it lives. host-a is killed with SIGKILL under a writer:
// within 60 s of its last heartbeat host-b has taken every tenant, and
// every committed row is restorable.
func TestDeadHostTakenOver(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	tenants := []string{guid1, guid2, guid3}
	for _, tn := range tenants {
		testpeer.NewDB(t, filepath.Join(dir, tn+".db"), 3)
	}
	env := testpeer.CredEnv(srv)
	a := startLitefleet(t, env, replicateArgs(srv, conn, "-dir", dir, "-host", "host-a", "-sleep-after", "0")...)
	for _, tn := range tenants {
		a.WaitFor(`replicating: db=`+tn, 20*time.Second)
	}
	b := startLitefleet(t, env, replicateArgs(srv, conn, "-dir", dir, "-host", "host-b")...)
	for _, tn := range tenants {
		b.WaitFor(`leased elsewhere: db=`+tn+` reason="held by live host host-a`, 20*time.Second)
	}
	db := testpeer.OpenDB(t, filepath.Join(dir, guid1+".db"))
	w := testpeer.StartWriter(db, 100, 100*time.Millisecond)
	// host-a uploads the writer's rows while host-b watches the claim:
	// three more of a's uploads of guid1, then b's output is checked.
	uploads := func() int { return len(regexp.MustCompile(seedTx(guid1)).FindAllString(a.Out.String(), -1)) }
	before := uploads()
	w.WaitCommitted(t, 120, 30*time.Second)
	testpeer.Eventually(t, 30*time.Second, "three uploads of guid1 by host-a under the writer", func() bool { return uploads() >= before+3 })
	if strings.Contains(b.Out.String(), "replicating: db=") {
		t.Fatalf("host-b replicated a live host's tenant:\n%s", b.Out.String())
	}

	killed := time.Now()
	if err := a.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	a.Wait(10 * time.Second)
	for _, tn := range tenants {
		b.WaitFor(`took over tenant from a dead host: db=`+tn+` from=host-a`, 70*time.Second)
		b.WaitFor(`replicating: db=`+tn, 20*time.Second)
	}
	if took := time.Since(killed); took > 60*time.Second {
		t.Errorf("host-b took the tenants %s after host-a died, want within 60 s", took.Round(time.Second))
	}
	// Rows committed under host-b, then the writer stops.
	w.WaitCommitted(t, w.Next()+10, 30*time.Second)
	if n := w.Stop(t); n == 0 {
		t.Fatal("the writer committed nothing")
	}
	want := testpeer.Rows(t, filepath.Join(dir, guid1+".db"))
	testpeer.Eventually(t, 30*time.Second, "every committed row restorable", func() bool {
		return slices.Equal(restoreRowsQuiet(t, srv, conn, guid1), want)
	})
	if code := b.Stop(60 * time.Second); code != 0 {
		t.Fatalf("host-b exit %d", code)
	}
	out := filepath.Join(t.TempDir(), "litestream.db")
	testpeer.Restore(t, srv, conn, guid1, out)
	testpeer.SameRows(t, testpeer.Rows(t, out), want)
	for _, tn := range tenants[1:] {
		got := restoreRowsQuiet(t, srv, conn, tn)
		testpeer.SameRows(t, got, testpeer.Rows(t, filepath.Join(dir, tn+".db")))
	}
	_ = fmt.Sprint()
}
