package testpeer

import (
	"context"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/litestream"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/s3conn"
)

// The real litestream commands `make tools` builds into .tools/bin: the
// peers whose replicas litefleet must read and that must read litefleet's.
const (
	V5 = "litestream"    // v0.5.18: LTX files
	V3 = "v3/litestream" // v0.3.14: generations (built with cgo)
)

// Bin returns the litestream command of version (V5 or V3), failing the
// test when it is missing or another version.
func Bin(tb testing.TB, version string) string {
	tb.Helper()
	bin, err := s3test.FindTool(version)
	if err != nil {
		tb.Fatalf("%v: run make tools", err)
	}
	want := map[string]string{V5: "v0.5.", V3: "v0.3."}[version]
	// `litestream version` says "(development build)" for v0.3 built with
	// go install: read the module version Go records in the binary.
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		tb.Fatalf("%s: %v", bin, err)
	}
	if info.Main.Path != "github.com/benbjohnson/litestream" || !strings.HasPrefix(info.Main.Version, want) {
		tb.Fatalf("%s is %s@%s, want github.com/benbjohnson/litestream@%s*", bin, info.Main.Path, info.Main.Version, want)
	}
	return bin
}

// Env is the environment for litestream: this process's without
// AWS_CA_BUNDLE, with which Litestream's S3 client fails (DESIGN.md).
func Env() []string { return Without(os.Environ(), "AWS_CA_BUNDLE") }

// Litestream is the real `litestream replicate` replicating one database
// into its tenant's prefix, run apart from the test binary as a service
// manager would run it.
type Litestream struct {
	*Process
	tb      testing.TB
	Bin     string
	Config  string // its litestream.yml
	DB      string
	version string
	socket  string // v0.5's control socket, for Sync
}

// Replicate starts litestream of version replicating the database at path
// to conn's prefix for tenant on srv. The test ends it (killed) unless
// Stop did.
func Replicate(tb testing.TB, srv *s3test.Server, conn s3conn.Conn, version, path, tenant string) *Litestream {
	tb.Helper()
	l := &Litestream{tb: tb, Bin: Bin(tb, version), DB: path, version: version}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "access-key-id: %s\nsecret-access-key: %s\n", srv.AccessKey, srv.SecretKey)
	replica := fmt.Sprintf("type: s3\nbucket: %s\npath: %s\nendpoint: %s\nregion: us-east-1\nforce-path-style: true\n",
		conn.Bucket, conn.TenantPath(tenant), srv.Endpoint)
	switch version {
	case V5:
		// A unix socket path must stay under ~100 bytes: not in t.TempDir().
		dir, err := os.MkdirTemp("", "lsock-")
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { os.RemoveAll(dir) })
		l.socket = filepath.Join(dir, "s")
		fmt.Fprintf(&cfg, "socket:\n  enabled: true\n  path: %s\ndbs:\n  - path: %s\n    replica:\n%s", l.socket, path,
			indent(replica+"sync-interval: 100ms\n", "      "))
	case V3:
		fmt.Fprintf(&cfg, "dbs:\n  - path: %s\n    monitor-interval: 100ms\n    replicas:\n      - %s", path,
			strings.TrimPrefix(indent(replica+"sync-interval: 200ms\n", "        "), "        "))
	default:
		tb.Fatalf("litestream version %q: want V5 or V3", version)
	}
	l.Config = filepath.Join(tb.TempDir(), "litestream.yml")
	if err := os.WriteFile(l.Config, []byte(cfg.String()), 0o600); err != nil {
		tb.Fatal(err)
	}
	l.Process = Start(tb, Env(), l.Bin, "replicate", "-config", l.Config)
	return l
}

func indent(s, by string) string {
	lines := strings.SplitAfter(strings.TrimSuffix(s, "\n"), "\n")
	return by + strings.Join(lines, by) + "\n"
}

// Sync makes litestream (v0.5) sync what is committed now and upload it
// (`litestream sync -wait`), and returns the TXID the replica then holds.
func (l *Litestream) Sync() uint64 {
	l.tb.Helper()
	if l.version != V5 {
		l.tb.Fatal("Sync needs litestream v0.5 (its control socket)")
	}
	var res struct {
		TXID        uint64  `json:"txid"`
		ReplicaTXID *uint64 `json:"replica_txid"`
	}
	var last string
	// Until the replicator has opened the database, the socket refuses.
	Eventually(l.tb, 30*time.Second, "litestream sync", func() bool {
		select {
		case <-l.Done():
			l.tb.Fatalf("litestream exited:\n%s", l.Out.String())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, l.Bin, "sync", "-socket", l.socket, "-wait", "-json", l.DB)
		cmd.Env = Env()
		out, err := cmd.CombinedOutput()
		last = string(out)
		return err == nil && json.Unmarshal(out, &res) == nil && res.ReplicaTXID != nil
	})
	if *res.ReplicaTXID < res.TXID {
		l.tb.Fatalf("litestream sync -wait: the replica holds TXID %d of %d:\n%s", *res.ReplicaTXID, res.TXID, last)
	}
	return *res.ReplicaTXID
}

// Stop stops litestream with SIGTERM, which makes a final sync, and fails
// the test unless it exits cleanly within 30 s.
func (l *Litestream) Stop() {
	l.tb.Helper()
	if code := l.Process.Stop(30 * time.Second); code != 0 {
		l.tb.Fatalf("litestream exit %d after SIGTERM:\n%s", code, l.Out.String())
	}
}

// Command runs another litestream command against the same config (ltx,
// snapshots, wal) and returns its stdout; killed after two minutes.
func (l *Litestream) Command(args ...string) []byte {
	l.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, l.Bin, args...)
	cmd.Env = Env()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		l.tb.Fatalf("litestream %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return out
}

// Restore restores tenant's prefix to out with the real litestream v0.5,
// the seed's way: litestream restore -o PATH s3://BUCKET/databases/TENANT.
func Restore(tb testing.TB, srv *s3test.Server, conn s3conn.Conn, tenant, out string) {
	tb.Helper()
	url := conn.URL(tenant) + "?endpoint=" + srv.Endpoint + "&region=us-east-1&forcePathStyle=true"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, Bin(tb, V5), "restore", "-o", out, url)
	cmd.Env = Without(CredEnv(srv), "AWS_CA_BUNDLE")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("litestream restore %s: %v\n%s", url, err, b)
	}
}

// WaitInS3 polls the tenant's replica (s3browse.Inspect) until ok holds,
// failing the test after 30 s, and returns the report that satisfied it:
// how a test waits for a peer that has no way to say it has uploaded.
func WaitInS3(tb testing.TB, api s3conn.API, conn s3conn.Conn, tenant, what string, ok func(*s3browse.Tenant) bool) *s3browse.Tenant {
	tb.Helper()
	var tn *s3browse.Tenant
	Eventually(tb, 30*time.Second, tenant+": "+what, func() bool {
		var err error
		tn, err = s3browse.Inspect(context.Background(), api, conn, tenant)
		if err != nil {
			tb.Fatal(err)
		}
		return ok(tn)
	})
	return tn
}

// LocalTXID is the position Litestream's local state beside the database
// at path holds (its newest level-0 file), read the library's own way
// without opening the database; 0 before the first sync.
func LocalTXID(tb testing.TB, path string) uint64 {
	tb.Helper()
	pos, err := litestream.NewDB(path).Pos()
	if err != nil {
		tb.Fatalf("litestream position of %s: %v", path, err)
	}
	return uint64(pos.TXID)
}
