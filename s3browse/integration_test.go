package s3browse_test

// Integration tests: a real S3 server (versitygw, through internal/s3test)
// and replicas written by the real Litestream commands, v0.5.18 and the
// legacy v0.3.14. Skipped with -short.

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	_ "modernc.org/sqlite"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/s3browse"
)

// litestreamV3 is where make tools (scripts/tools.sh) puts v0.3.14,
// relative to .tools/bin.
const litestreamV3 = "v3/litestream"

func TestIntegrationLitestreamV5(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	bin, err := s3test.FindTool("litestream")
	if err != nil {
		t.Fatalf("%v: install it with `GOBIN=$PWD/.tools/bin CGO_ENABLED=0 go install github.com/benbjohnson/litestream/cmd/litestream@v0.5.18`", err)
	}
	requireVersion(t, bin, "v0.5.")
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	client := srv.Client(t, conn)
	const tenant = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"

	dir := t.TempDir()
	dbPath := filepath.Join(dir, tenant+".db")
	config := writeFile(t, dir, "litestream.yml", fmt.Sprintf(`
access-key-id: %s
secret-access-key: %s
dbs:
  - path: %s
    replica:
      type: s3
      bucket: %s
      path: %s
      endpoint: %s
      region: us-east-1
      force-path-style: true
      sync-interval: 200ms
`, srv.AccessKey, srv.SecretKey, dbPath, conn.Bucket, conn.TenantPath(tenant), srv.Endpoint))

	start := time.Now().Add(-time.Second).Truncate(time.Second)
	replicateWhileWriting(t, dbPath, bin, "replicate", "-config", config)

	// Litestream's own listing is the oracle for what is on the server.
	var oracle []struct {
		Level   int    `json:"level"`
		MinTXID string `json:"min_txid"`
		MaxTXID string `json:"max_txid"`
		Size    int64  `json:"size"`
	}
	out := run(t, bin, "ltx", "-config", config, "-level", "all", "-json", dbPath)
	if err := json.Unmarshal(out, &oracle); err != nil || len(oracle) == 0 {
		t.Fatalf("litestream ltx: %v: %s", err, out)
	}
	var wantFiles []string
	var wantLatest uint64
	for _, f := range oracle {
		wantFiles = append(wantFiles, fmt.Sprintf("%d %s %s %d", f.Level, f.MinTXID, f.MaxTXID, f.Size))
		maxTXID, err := strconv.ParseUint(f.MaxTXID, 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		wantLatest = max(wantLatest, maxTXID)
	}

	ctx := context.Background()
	sums, err := s3browse.Scan(ctx, client, conn)
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != 1 {
		t.Fatalf("Scan: %d tenants, want 1: %+v", len(sums), sums)
	}
	s := sums[0]
	if s.Name != tenant || !s.Valid || s.Format != s3browse.FormatLTX || s.LatestTXID != wantLatest || s.LatestTXIDHex != s3browse.TXIDHex(wantLatest) {
		t.Errorf("Scan: %+v, want tenant %s, ltx, latest TXID %d", s, tenant, wantLatest)
	}
	if len(s.Levels) == 0 || s.Levels[0].Level != 0 || s.Levels[0].Count == 0 || s.UnknownObjects != 0 {
		t.Errorf("Scan levels %+v, unknown %d", s.Levels, s.UnknownObjects)
	}
	if s.LatestLTXAt.Before(start) || s.LatestLTXAt.After(time.Now().Add(time.Minute)) {
		t.Errorf("latest LTX at %s, not during the test (from %s)", s.LatestLTXAt, start)
	}

	tn, err := s3browse.Inspect(ctx, client, conn, tenant)
	if err != nil {
		t.Fatal(err)
	}
	var gotFiles []string
	for _, l := range tn.Levels {
		for _, f := range l.Files {
			gotFiles = append(gotFiles, fmt.Sprintf("%d %s %s %d", f.Level, f.MinTXIDHex, f.MaxTXIDHex, f.Size))
		}
	}
	if !slices.Equal(gotFiles, wantFiles) {
		t.Errorf("Inspect files:\n%s\nlitestream ltx:\n%s", strings.Join(gotFiles, "\n"), strings.Join(wantFiles, "\n"))
	}
	if tn.Format != s3browse.FormatLTX || tn.LatestTXID != wantLatest || tn.Totals != s.Totals {
		t.Errorf("Inspect totals %+v, Scan totals %+v", tn.Totals, s.Totals)
	}
	t.Logf("litestream v0.5 replica: %d LTX files over %d levels, latest TXID %s, %d bytes",
		len(gotFiles), len(tn.Levels), tn.LatestTXIDHex, tn.Bytes)
}

func TestIntegrationLitestreamV3(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	bin, err := s3test.FindTool(litestreamV3)
	if err != nil {
		t.Fatalf("legacy litestream v0.3.14 not found at .tools/bin/%s: run make tools (it builds v0.3.14 with cgo and a C compiler): %v", litestreamV3, err)
	}
	requireVersion(t, bin, "v0.3.")
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	client := srv.Client(t, conn)
	const tenant = "legacy-001"

	dir := t.TempDir()
	dbPath := filepath.Join(dir, "legacy-client.db")
	config := writeFile(t, dir, "litestream.yml", fmt.Sprintf(`
access-key-id: %s
secret-access-key: %s
dbs:
  - path: %s
    monitor-interval: 100ms
    replicas:
      - type: s3
        bucket: %s
        path: %s
        endpoint: %s
        region: us-east-1
        force-path-style: true
        sync-interval: 200ms
`, srv.AccessKey, srv.SecretKey, dbPath, conn.Bucket, conn.TenantPath(tenant), srv.Endpoint))

	replicateWhileWriting(t, dbPath, bin, "replicate", "-config", config)

	// The v0.3 command's own listings are the oracle.
	var wantSnaps, wantWAL []string
	for _, row := range table(t, run(t, bin, "snapshots", "-config", config, dbPath)) {
		wantSnaps = append(wantSnaps, fmt.Sprintf("%s %s %s", row["generation"], row["index"], row["size"]))
	}
	for _, row := range table(t, run(t, bin, "wal", "-config", config, dbPath)) {
		wantWAL = append(wantWAL, fmt.Sprintf("%s %s %s %s", row["generation"], row["index"], row["offset"], row["size"]))
	}

	ctx := context.Background()
	tn, err := s3browse.Inspect(ctx, client, conn, tenant)
	if err != nil {
		t.Fatal(err)
	}
	if tn.Format != s3browse.FormatGenerations || len(tn.Generations) == 0 || tn.UnknownObjects != 0 {
		t.Fatalf("Inspect: format %s, %d generations, %d unknown objects", tn.Format, len(tn.Generations), tn.UnknownObjects)
	}
	var gotSnaps, gotWAL []string
	for _, g := range tn.Generations {
		for _, s := range g.Snapshots {
			gotSnaps = append(gotSnaps, fmt.Sprintf("%s %d %d", g.ID, s.Index, s.Size))
		}
		for _, w := range g.WALSegments {
			gotWAL = append(gotWAL, fmt.Sprintf("%s %d %d %d", g.ID, w.Index, w.Offset, w.Size))
		}
	}
	slices.Sort(gotSnaps)
	slices.Sort(wantSnaps)
	slices.Sort(gotWAL)
	slices.Sort(wantWAL)
	if len(gotSnaps) == 0 || len(gotWAL) == 0 {
		t.Errorf("%d snapshots and %d WAL segments, want some of each", len(gotSnaps), len(gotWAL))
	}
	if !slices.Equal(gotSnaps, wantSnaps) {
		t.Errorf("snapshots:\n%s\nlitestream snapshots:\n%s", strings.Join(gotSnaps, "\n"), strings.Join(wantSnaps, "\n"))
	}
	if !slices.Equal(gotWAL, wantWAL) {
		t.Errorf("WAL segments:\n%s\nlitestream wal:\n%s", strings.Join(gotWAL, "\n"), strings.Join(wantWAL, "\n"))
	}

	sums, err := s3browse.Scan(ctx, client, conn)
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != 1 || sums[0].Totals != tn.Totals || sums[0].Generations != len(tn.Generations) {
		t.Errorf("Scan %+v does not match Inspect %+v", sums, tn.Totals)
	}
	t.Logf("litestream v0.3 replica: %d generations, %d snapshots, %d WAL segments, %d bytes",
		len(tn.Generations), len(gotSnaps), len(gotWAL), tn.Bytes)
}

// TestIntegrationUntrustedNames checks, on a real server, that names with
// spaces, '+', '%' and control characters survive the URL-encoded listing
// and that hostile ones are refused.
func TestIntegrationUntrustedNames(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	client := srv.Client(t, conn)
	ctx := context.Background()
	valid := []string{"has space", "plus+sign", "pct%41", "ünï"}
	// (Names over 255 bytes are covered by the unit tests: versitygw's posix
	// backend refuses them with KeyTooLongError.)
	hostile := []string{"red\x1b[31m", "bell\a", "rtl\u202eexe"}
	for _, name := range slices.Concat(valid, hostile) {
		_, err := client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(conn.Bucket), Key: aws.String(conn.TenantPath(name) + "/lock.json"),
			Body: bytes.NewReader([]byte("{}")),
		})
		if err != nil {
			t.Fatalf("put %s: %v", s3browse.Printable(name), err)
		}
	}
	got, err := s3browse.ListTenants(ctx, client, conn)
	if err != nil {
		t.Fatal(err)
	}
	sums, err := s3browse.Scan(ctx, client, conn)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(valid)+len(hostile) || len(sums) != len(got) {
		t.Fatalf("ListTenants %d, Scan %d, want %d", len(got), len(sums), len(valid)+len(hostile))
	}
	for i, p := range got {
		if sums[i].Prefix != p {
			t.Errorf("ListTenants %+v, Scan %+v", p, sums[i].Prefix)
		}
		if p.Valid != slices.Contains(valid, p.Name) {
			t.Errorf("%s: valid %v (%s)", p.Display(), p.Valid, p.Problem)
		}
		t.Logf("%-12s valid=%v %s", p.Display(), p.Valid, p.Problem)
	}
}

// replicateWhileWriting creates a WAL-mode database at dbPath, runs the
// litestream command args for about three seconds while committing rows,
// then stops it with SIGTERM, as a service manager would.
func replicateWhileWriting(t *testing.T, dbPath, bin string, args ...string) {
	t.Helper()
	// A busy timeout, as any application beside Litestream needs: the
	// replicator takes locks of its own (checkpoints, its read transaction).
	db, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{"PRAGMA journal_mode=WAL", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	var logs bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Env = environWithout("AWS_CA_BUNDLE") // breaks litestream's S3 client
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(bin), logs.String())
		}
	}()

	deadline := time.Now().Add(3 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		if _, err := db.Exec("INSERT INTO t (v) VALUES (?)", strings.Repeat("row", 100+i)); err != nil {
			t.Fatalf("insert: %v", err)
		}
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("litestream exited early: %v\n%s", err, logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	// Let the last commits reach the replica before stopping.
	time.Sleep(time.Second)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		stopped = true
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("litestream: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("litestream did not stop within 15s of SIGTERM\n%s", logs.String())
	}
}

// requireVersion fails unless bin was built from litestream at a version
// starting with prefix. It reads the module version Go records in the
// binary: `litestream version` says "(development build)" for v0.3 built
// with go install.
func requireVersion(t *testing.T, bin, prefix string) {
	t.Helper()
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	if info.Main.Path != "github.com/benbjohnson/litestream" || !strings.HasPrefix(info.Main.Version, prefix) {
		t.Fatalf("%s is %s@%s, want github.com/benbjohnson/litestream@%s*", bin, info.Main.Path, info.Main.Version, prefix)
	}
}

func environWithout(name string) []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, name+"=") })
}

func run(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = environWithout("AWS_CA_BUNDLE")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(bin), strings.Join(args, " "), err, out, stderr.String())
	}
	return out
}

// table parses the tab-aligned output of litestream's list commands into
// rows keyed by the header's column names.
func table(t *testing.T, out []byte) []map[string]string {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(out))
	var header []string
	var rows []map[string]string
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if header == nil {
			header = fields
			continue
		}
		if len(fields) != len(header) {
			t.Fatalf("row %q does not match header %q", fields, header)
		}
		row := make(map[string]string, len(fields))
		for i, h := range header {
			row[h] = fields[i]
		}
		rows = append(rows, row)
	}
	return rows
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
