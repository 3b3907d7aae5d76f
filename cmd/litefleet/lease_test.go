package main

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/internal/s3proxy"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
)

// TestSkewedDateNeverTakesLiveHost: host-b reaches S3 through a proxy
// that moves every Date header 120 s ahead (or behind), as nginx or an S3
// node with its own clock would. While host-a lives, host-b leaves its
// tenant alone for longer than DeadAfter; once host-a is killed, host-b
// takes the tenant within DeadAfter and a few beats, and replicates it.
func TestSkewedDateNeverTakesLiveHost(t *testing.T) {
	testpeer.Integration(t)
	for _, skew := range []time.Duration{120 * time.Second, -120 * time.Second} {
		t.Run(fmt.Sprintf("date%+ds", int(skew.Seconds())), func(t *testing.T) {
			t.Parallel()
			srv := s3test.Start(t)
			conn := srv.Conn(t)
			proxy, err := s3proxy.Start(s3proxy.Options{Target: srv.Endpoint, DateSkew: skew})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = proxy.Close() })
			dir := t.TempDir()
			testpeer.NewDB(t, filepath.Join(dir, guid1+".db"), 3)
			env := testpeer.CredEnv(srv)
			a := startLitefleet(t, env, replicateArgs(srv, conn, "-dir", dir, "-host", "host-a", "-sleep-after", "0")...)
			a.WaitFor(`replicating: db=`+guid1, 20*time.Second)
			b := startLitefleet(t, env, "replicate", "-bucket", conn.Bucket, "-endpoint", proxy.URL(), "-dir", dir, "-host", "host-b")
			b.WaitFor(`leased elsewhere: db=`+guid1+` reason="held by live host host-a`, 20*time.Second)

			// Longer than DeadAfter and a beat, host-a alive: never taken.
			db := testpeer.OpenDB(t, filepath.Join(dir, guid1+".db"))
			w := testpeer.StartWriter(db, 100, 200*time.Millisecond)
			time.Sleep(50 * time.Second)
			if out := b.Out.String(); strings.Contains(out, "took over tenant") || strings.Contains(out, "replicating: db=") {
				t.Fatalf("host-b took live host-a's tenant with Date skewed %s:\n%s", skew, out)
			}
			w.Stop(t)

			if err := a.Cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			a.Wait(10 * time.Second)
			b.WaitFor(`took over tenant from a dead host: db=`+guid1+` from=host-a`, 75*time.Second)
			b.WaitFor(`replicating: db=`+guid1, 20*time.Second)
		})
	}
}

// TestSecondProcessSameHostRefused: a second replicator under the -host of
// a live one is refused, in one line naming the other's machine, pid and
// start time, and it writes nothing.
func TestSecondProcessSameHostRefused(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	testpeer.NewDB(t, filepath.Join(dirA, guid1+".db"), 3)
	testpeer.NewDB(t, filepath.Join(dirB, guid2+".db"), 3)
	env := testpeer.CredEnv(srv)
	a := startLitefleet(t, env, replicateArgs(srv, conn, "-dir", dirA, "-host", "same")...)
	a.WaitFor(`replicating: db=`+guid1, 20*time.Second)

	code, out := runLitefleet(t, env, replicateArgs(srv, conn, "-dir", dirB, "-host", "same")...)
	re := regexp.MustCompile(fmt.Sprintf(`host name same is in use by a live replicator \(machine [^,]+, pid %d, started \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ; [^)]+\)[^\n]*`, a.Cmd.Process.Pid))
	if code == 0 || !re.MatchString(out) {
		t.Fatalf("second process under -host same: exit %d:\n%s", code, out)
	}
	if strings.Contains(out, "replicating: db=") {
		t.Fatalf("the second process replicated:\n%s", out)
	}
}

// TestIgnoredConditionsNoTakeover: host-b reaches S3 through a proxy that
// drops If-Match and If-None-Match, as a server that ignores them would.
// Its probe finds out, and when host-a is killed host-b does not take
// its tenant (of two such takers both could win): the tenant says why, and
// the claim still names host-a.
func TestIgnoredConditionsNoTakeover(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	proxy, err := s3proxy.Start(s3proxy.Options{Target: srv.Endpoint, IgnoreConditions: true, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	dir := t.TempDir()
	testpeer.NewDB(t, filepath.Join(dir, guid1+".db"), 3)
	env := testpeer.CredEnv(srv)
	a := startLitefleet(t, env, replicateArgs(srv, conn, "-dir", dir, "-host", "host-a")...)
	a.WaitFor(`replicating: db=`+guid1, 20*time.Second)
	b := startLitefleet(t, env, "replicate", "-bucket", conn.Bucket, "-endpoint", proxy.URL(), "-dir", dir, "-host", "host-b")
	b.WaitFor(`does not honour conditional writes`, 20*time.Second)
	b.WaitFor(`leased elsewhere: db=`+guid1, 20*time.Second)

	if err := a.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	a.Wait(10 * time.Second)
	b.WaitFor(`lease lost \(retrying\): db=`+guid1+` reason="[^"]*not trusted`, 90*time.Second)
	if out := b.Out.String(); strings.Contains(out, "took over tenant") || strings.Contains(out, "replicating: db=") {
		t.Fatalf("host-b took a tenant on a server that ignores conditional writes:\n%s", out)
	}
	claim, err := hosts.ReadClaim(context.Background(), srv.Client(t, conn), conn.Bucket, conn.TenantPath(guid1))
	if err != nil || claim == nil || claim.Host != "host-a" {
		t.Fatalf("the claim is %+v, %v: want host-a's", claim, err)
	}
}

// TestRestoreOverLiveDatabaseUnderSkew: restore reaches S3 through a
// proxy whose Date runs 120 s ahead, so the live host's heartbeat looks
// two minutes old. Over the live database it is still refused, -force or
// not: it watched the heartbeat change. Once that host is killed, the
// same restore goes ahead: it saw the heartbeat unchanged for DeadAfter.
func TestRestoreOverLiveDatabaseUnderSkew(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	proxy, err := s3proxy.Start(s3proxy.Options{Target: srv.Endpoint, DateSkew: 120 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	src := filepath.Join(t.TempDir(), guid2+".db")
	testpeer.NewDB(t, src, 20)
	env := testpeer.CredEnv(srv)
	p := startLitefleet(t, env, replicateArgs(srv, conn, "-dsn", src, "-host", "host-a")...)
	p.WaitFor(`replicating: db=`+guid2, 20*time.Second)
	p.WaitFor(seedTx(guid2), 20*time.Second)
	viaProxy := []string{"-bucket", conn.Bucket, "-endpoint", proxy.URL()}

	code, text := runLitefleet(t, env, append([]string{"restore", guid2, "-o", src, "-force"}, viaProxy...)...)
	if code != 1 || !strings.Contains(text, "is being replicated by host host-a") {
		t.Fatalf("restore over a live database with Date skewed +120 s: exit %d:\n%s", code, text)
	}
	if n := len(testpeer.Rows(t, src)); n != 20 {
		t.Fatalf("the live database now has %d rows", n)
	}

	if err := p.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p.Wait(10 * time.Second)
	code, text = runLitefleet(t, env, append([]string{"restore", guid2, "-o", src, "-force"}, viaProxy...)...)
	if code != 0 {
		t.Fatalf("restore over a killed host's database: exit %d:\n%s", code, text)
	}
}
