package hosts_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/internal/faultproxy"
	"github.com/litefleet/litefleet/internal/s3test"
)

// TestUntrustedProbedAgain: a host that started while the server (here a
// proxy in front of it) ignored conditional writes claims again once the
// server honours them. Chaos seed 33 (rerun): h2, restarted after SIGKILL
// while every proxy stripped conditions, found them ignored and never
// probed again; its tenants' claims had been released by a standby whose
// copy diverged, so for the 9 minutes left h2 claimed nothing and the 159
// rows only its copy held were never uploaded.
func TestUntrustedProbedAgain(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	proxy, err := faultproxy.Start(faultproxy.Options{Name: "h2", Target: srv.Endpoint, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	if err := proxy.Set(faultproxy.Faults{StripConditional: true}); err != nil {
		t.Fatal(err)
	}
	viaProxy := conn
	viaProxy.Endpoint = proxy.URL()
	api := srv.Client(t, viaProxy)
	bt, err := hosts.New(hosts.Options{API: api, Bucket: conn.Bucket, Host: "h2", Timing: fast})
	if err != nil {
		t.Fatal(err)
	}
	if err := bt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bt.Stop(context.Background()) })
	if tr := bt.Trusted(); !tr.Known || tr.OK {
		t.Fatalf("probe with conditions stripped: %+v, want known and not trusted", tr)
	}
	const tenant = "databases/146d2414"
	var untrusted *hosts.UntrustedError
	if _, err := bt.Acquire(ctx, api, tenant); !errors.As(err, &untrusted) {
		t.Fatalf("claimed with conditions stripped: %v, want *UntrustedError", err)
	}
	if err := proxy.Set(faultproxy.Faults{}); err != nil {
		t.Fatal(err)
	}
	// ReprobeBeats beats, and slack for a loaded machine.
	wait := time.Duration(hosts.ReprobeBeats+1)*fast.BeatEvery + 20*time.Second
	deadline := time.Now().Add(wait)
	for !bt.Trusted().OK {
		if time.Now().After(deadline) {
			t.Fatalf("conditional writes still untrusted %s after the server honoured them again: %+v", wait, bt.Trusted())
		}
		time.Sleep(fast.BeatEvery / 5)
	}
	if _, err := bt.Acquire(ctx, api, tenant); err != nil {
		t.Fatalf("claim once conditions were honoured again: %v", err)
	}
}
