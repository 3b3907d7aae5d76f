package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/layout"
)

// restoreReplicate replicates the databases with one litefleet process until
// each tenant has synced, then stops it cleanly.
func restoreReplicate(t *testing.T, srv *s3test.Server, args []string, tenants ...string) {
	t.Helper()
	p := startLitefleet(t, testpeer.CredEnv(srv), args...)
	for _, tn := range tenants {
		p.WaitFor(seedTx(tn), 30*time.Second)
	}
	if code := p.Stop(60 * time.Second); code != 0 {
		t.Fatalf("replicate exit %d:\n%s", code, p.Out.String())
	}
}

func TestRestoreCommand(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	src := filepath.Join(t.TempDir(), guid1+".db")
	db := testpeer.OpenDB(t, src)
	testpeer.InsertRows(t, db, 0, 300)
	restoreReplicate(t, srv, replicateArgs(srv, conn, "-dsn", src), guid1)
	want := testpeer.Rows(t, src)
	ep := []string{"-bucket", conn.Bucket, "-endpoint", srv.Endpoint}

	dir := t.TempDir()
	out := filepath.Join(dir, guid1+".db")

	// Dry run: the plan, and nothing written.
	code, text := runLitefleet(t, testpeer.CredEnv(srv), append([]string{"restore", guid1, "-o", out, "-dry-run"}, ep...)...)
	if code != 0 || !regexp.MustCompile(`databases/`+guid1+`/\d{4}/0000000000000001-[0-9a-f]{16}\.ltx`).MatchString(text) ||
		!regexp.MustCompile(`\d+ files?, [\d.]+ [KM]iB to download; the file would hold TXID [0-9a-f]{16}`).MatchString(text) ||
		!strings.Contains(text, "nothing was written") {
		t.Fatalf("dry run exit %d:\n%s", code, text)
	}
	if got := testpeer.DirNames(t, dir); len(got) != 0 {
		t.Fatalf("dry run wrote %q", got)
	}

	// The tenant, with flags after it.
	code, text = runLitefleet(t, testpeer.CredEnv(srv), append([]string{"restore", guid1, "-o", out}, ep...)...)
	if code != 0 {
		t.Fatalf("restore exit %d:\n%s", code, text)
	}
	testpeer.SameRows(t, testpeer.Restored(t, out), want)
	if !regexp.MustCompile(`holds: +TXID [0-9a-f]{16} \(\d+\) at \d{4}-`).MatchString(text) ||
		!strings.Contains(text, "integrity_check ok") || !strings.Contains(text, "the file is current") {
		t.Fatalf("restore output:\n%s", text)
	}

	// Byte for byte what the real litestream restores.
	ls := filepath.Join(t.TempDir(), "litestream.db")
	testpeer.Restore(t, srv, conn, guid1, ls)
	a, _ := os.ReadFile(out)
	b, _ := os.ReadFile(ls)
	if !bytes.Equal(a, b) {
		t.Fatalf("litefleet restored %d bytes, litestream %d, and they differ", len(a), len(b))
	}

	// An existing file is refused, and kept with -force.
	code, text = runLitefleet(t, testpeer.CredEnv(srv), append([]string{"restore", guid1, "-o", out}, ep...)...)
	if code != 1 || !strings.Contains(text, out+" exists: pass -force") {
		t.Fatalf("restore over an existing file: exit %d:\n%s", code, text)
	}
	code, text = runLitefleet(t, testpeer.CredEnv(srv), append([]string{"restore", guid1, "-o", out, "-force", "-json"}, ep...)...)
	if code != 0 {
		t.Fatalf("restore -force exit %d:\n%s", code, text)
	}
	var res struct {
		Output    string `json:"output"`
		TXID      uint64 `json:"txid"`
		Integrity string `json:"integrity"`
		Backup    string `json:"backup"`
		Current   bool   `json:"current"`
		Latest    struct {
			TXID uint64 `json:"txid"`
		} `json:"latest"`
		Plan struct {
			Files []struct {
				Key string `json:"key"`
			} `json:"files"`
		} `json:"plan"`
	}
	if err := json.Unmarshal([]byte(text), &res); err != nil {
		t.Fatalf("-json: %v:\n%s", err, text)
	}
	if res.Output != out || res.Integrity != "ok" || !res.Current || res.TXID == 0 || res.TXID != res.Latest.TXID ||
		!strings.HasPrefix(res.Backup, out+".bak-") || len(res.Plan.Files) == 0 {
		t.Fatalf("-json result: %+v", res)
	}
	testpeer.SameRows(t, testpeer.Restored(t, res.Backup), want)
	if got := testpeer.DirNames(t, dir); !slices.Equal(got, []string{guid1 + ".db", filepath.Base(res.Backup)}) {
		t.Fatalf("folder holds %q", got)
	}

	// The seed's form, the arguments of litestream restore. A folder that
	// does not exist is refused, not made.
	seed := filepath.Join(t.TempDir(), "restore", guid1+".db")
	seedArgs := []string{"restore", "-endpoint", srv.Endpoint, "-o", seed, "s3://" + conn.Bucket + "/databases/" + guid1}
	code, text = runLitefleet(t, testpeer.CredEnv(srv), seedArgs...)
	if code != 1 || !strings.Contains(text, "folder "+filepath.Dir(seed)+" does not exist") {
		t.Fatalf("restore into a missing folder: exit %d:\n%s", code, text)
	}
	if _, err := os.Stat(filepath.Dir(seed)); !os.IsNotExist(err) {
		t.Fatalf("the refused restore made %s: %v", filepath.Dir(seed), err)
	}
	if err := os.Mkdir(filepath.Dir(seed), 0o755); err != nil {
		t.Fatal(err)
	}
	code, text = runLitefleet(t, testpeer.CredEnv(srv), seedArgs...)
	if code != 0 {
		t.Fatalf("seed form exit %d:\n%s", code, text)
	}
	testpeer.SameRows(t, testpeer.Restored(t, seed), want)

	// A -config file without dbs gives the credentials.
	cfg := filepath.Join(t.TempDir(), "creds.yml")
	if err := os.WriteFile(cfg, []byte("access-key-id: $LF_KEY\nsecret-access-key: $LF_SECRET\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(testpeer.Without(os.Environ(), "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), "LF_KEY="+srv.AccessKey, "LF_SECRET="+srv.SecretKey)
	viaConfig := filepath.Join(t.TempDir(), "cfg.db")
	code, text = runLitefleet(t, env, append([]string{"restore", "-config", cfg, guid1, "-o", viaConfig}, ep...)...)
	if code != 0 {
		t.Fatalf("-config exit %d:\n%s", code, text)
	}
	testpeer.SameRows(t, testpeer.Restored(t, viaConfig), want)
	if strings.Contains(text, srv.SecretKey) {
		t.Fatal("the secret key was printed")
	}
}

func TestRestoreRefusedWhileLeased(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	src := filepath.Join(t.TempDir(), guid2+".db")
	testpeer.NewDB(t, src, 20)
	p := startLitefleet(t, testpeer.CredEnv(srv), replicateArgs(srv, conn, "-dsn", src)...)
	owner := "host " + p.WaitFor(`heartbeat started: host=(\S+)`, 20*time.Second)[1]
	p.WaitFor(`replicating: db=`+guid2, 20*time.Second)
	p.WaitFor(seedTx(guid2), 20*time.Second)
	ep := []string{"-bucket", conn.Bucket, "-endpoint", srv.Endpoint}

	// Over the live file itself, -force or not: refused, naming the owner.
	code, text := runLitefleet(t, testpeer.CredEnv(srv), append([]string{"restore", guid2, "-o", src, "-force"}, ep...)...)
	if code != 1 || !strings.Contains(text, "is being replicated by "+owner) || !strings.Contains(text, "stop that replicator") {
		t.Fatalf("restore over a leased tenant: exit %d:\n%s", code, text)
	}
	if n := len(testpeer.Rows(t, src)); n != 20 {
		t.Fatalf("the live database now has %d rows", n)
	}
	// A copy elsewhere is fine, with a note that the tenant is live.
	copyPath := filepath.Join(t.TempDir(), guid2+".db")
	code, text = runLitefleet(t, testpeer.CredEnv(srv), append([]string{"restore", guid2, "-o", copyPath}, ep...)...)
	if code != 0 || !strings.Contains(text, "is being replicated by "+owner) {
		t.Fatalf("restore of a live tenant to a new file: exit %d:\n%s", code, text)
	}
	testpeer.SameRows(t, testpeer.Restored(t, copyPath), testpeer.Rows(t, src))

	// That copy is not the live database: -force replaces it, keeping it.
	code, text = runLitefleet(t, testpeer.CredEnv(srv), append([]string{"restore", guid2, "-o", copyPath, "-force"}, ep...)...)
	if code != 0 || !strings.Contains(text, "kept:      the old database as "+copyPath+".bak-") {
		t.Fatalf("restore -force over a copy of a live tenant: exit %d:\n%s", code, text)
	}
	testpeer.SameRows(t, testpeer.Restored(t, copyPath), testpeer.Rows(t, src))
	// A file with Litestream's state beside it is the replicated one.
	if err := os.Mkdir(layout.LitestreamStateDir(copyPath), 0o755); err != nil {
		t.Fatal(err)
	}
	code, text = runLitefleet(t, testpeer.CredEnv(srv), append([]string{"restore", guid2, "-o", copyPath, "-force"}, ep...)...)
	if code != 1 || !strings.Contains(text, "has Litestream's state beside it: stop that replicator") {
		t.Fatalf("restore -force over a file with Litestream state: exit %d:\n%s", code, text)
	}

	// The whole fleet, twice, into one folder, while the tenant is live:
	// the second run replaces the first one's copies.
	out := filepath.Join(t.TempDir(), "fleet")
	for run := 1; run <= 2; run++ {
		code, text = runLitefleet(t, testpeer.CredEnv(srv), append([]string{"restore", "-all", "-o", out, "-force"}, ep...)...)
		if code != 0 || !strings.Contains(text, "restore -all: 1 restored, 0 failed") {
			t.Fatalf("restore -all -force, run %d: exit %d:\n%s", run, code, text)
		}
	}
	testpeer.SameRows(t, testpeer.Restored(t, filepath.Join(out, guid2+".db")), testpeer.Rows(t, src))
	if code := p.Stop(60 * time.Second); code != 0 {
		t.Fatalf("replicate exit %d", code)
	}
}

func TestRestoreAllMatchParallelOneFails(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	if srv.Dir == "" {
		t.Skip("the S3 server's folder is unknown (set " + s3test.EnvDataDir + ")")
	}
	conn := srv.Conn(t)
	dir := t.TempDir()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "dbs:\n")
	tenants := []string{guid1, guid2, guid3, "legacy-client-001"}
	want := map[string][]string{}
	for i, tn := range tenants {
		path := filepath.Join(dir, tn+".db")
		testpeer.InsertRows(t, testpeer.OpenDB(t, path), 0, 10+i*10)
		fmt.Fprintf(&cfg, "  - path: %s\n    replica:\n      type: s3\n      bucket: %s\n      path: databases/%s\n      endpoint: %s\n", path, conn.Bucket, tn, srv.Endpoint)
		want[tn] = testpeer.Rows(t, path)
	}
	cfgPath := filepath.Join(dir, "litestream.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	restoreReplicate(t, srv, []string{"replicate", "-config", cfgPath}, tenants...)

	// A prefix whose name is no tenant name, and one tenant whose LTX
	// files were damaged on the server's disk.
	client := srv.Client(t, conn)
	const bad = "ABCDEFGH-not a tenant"
	if _, err := client.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(conn.Bucket), Key: aws.String("databases/" + bad + "/lock.json"), Body: bytes.NewReader([]byte("{}")),
	}); err != nil {
		t.Fatal(err)
	}
	corrupted := 0
	err := filepath.WalkDir(filepath.Join(srv.Dir, conn.Bucket, "databases", guid3), func(p string, d os.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(p, ".ltx") {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil || len(data) < 1024 {
			return err
		}
		for i := len(data) / 2; i < len(data)/2+8; i++ {
			data[i] ^= 0xff
		}
		corrupted++
		return os.WriteFile(p, data, 0o644)
	})
	if err != nil || corrupted == 0 {
		t.Fatalf("corrupt %s: %d files, %v", guid3, corrupted, err)
	}

	out := filepath.Join(t.TempDir(), "restored")
	code, text := runLitefleet(t, testpeer.CredEnv(srv), "restore", "-all", "-o", out, "-match", "????????-*", "-parallel", "2",
		"-bucket", conn.Bucket, "-endpoint", srv.Endpoint)
	if code != 1 {
		t.Fatalf("restore -all exit %d, want 1:\n%s", code, text)
	}
	for _, re := range []string{
		`(?m)^restored ` + guid1 + ` -> .*TXID [0-9a-f]{16}.* integrity ok, current$`,
		`(?m)^restored ` + guid2 + ` -> `,
		`(?m)^FAILED   ` + guid3 + `: .*object databases/` + guid3 + `/\d{4}/[0-9a-f-]+\.ltx: corrupt`,
		`(?m)^skipped  ABCDEFGH-not a tenant: not usable as a tenant: tenant name .* has characters outside`,
		`(?m)^restore -all: 2 restored, 1 failed, 1 skipped, of 3 tenants`,
		`1 of 3 tenants failed`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("output does not match %s", re)
		}
	}
	if t.Failed() {
		t.Fatalf("output:\n%s", text)
	}
	if got := testpeer.DirNames(t, out); !slices.Equal(got, []string{guid1 + ".db", guid2 + ".db"}) {
		t.Fatalf("%s holds %q, want the two restored tenants only", out, got)
	}
	for _, tn := range []string{guid1, guid2} {
		testpeer.SameRows(t, testpeer.Restored(t, filepath.Join(out, tn+".db")), want[tn])
	}

	// The dry run of the whole fleet, as JSON: every tenant planned, and
	// nothing written, not even the folder.
	fresh := filepath.Join(t.TempDir(), "fresh")
	code, text = runLitefleet(t, testpeer.CredEnv(srv), "restore", "-all", "-dry-run", "-json", "-o", fresh, "-bucket", conn.Bucket, "-endpoint", srv.Endpoint)
	var doc struct {
		Tenants []struct {
			Kind   string `json:"kind"`
			Tenant string `json:"tenant"`
		} `json:"tenants"`
		Summary struct {
			Tenants, Planned, Skipped int
		} `json:"summary"`
	}
	if err := json.Unmarshal([]byte(text), &doc); err != nil || code != 0 {
		t.Fatalf("-all -dry-run -json: exit %d, %v:\n%s", code, err, text)
	}
	if doc.Summary.Tenants != 4 || doc.Summary.Planned != 4 || doc.Summary.Skipped != 1 || len(doc.Tenants) != 5 {
		t.Fatalf("dry run summary %+v, %d events", doc.Summary, len(doc.Tenants))
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Fatalf("the dry run made %s: %v", fresh, err)
	}
	// Over the folder already restored, the dry run says the restore would
	// be refused for the two files there, and exits 1.
	code, text = runLitefleet(t, testpeer.CredEnv(srv), "restore", "-all", "-dry-run", "-o", out, "-match", "????????-*", "-bucket", conn.Bucket, "-endpoint", srv.Endpoint)
	if code != 1 || strings.Count(text, "would be refused: ") != 2 {
		t.Fatalf("-all -dry-run over restored files: exit %d:\n%s", code, text)
	}
}

func TestRestoreCommandLineMistakes(t *testing.T) {
	env := os.Environ()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"restore"}, "restore needs a tenant"},
		{[]string{"restore", guid1, "-bucket", "bkt", "-txid", "5", "-timestamp", "2026-01-01T00:00:00Z"}, "not both"},
		{[]string{"restore", guid1, "-bucket", "bkt", "-txid", "xyz"}, "-txid"},
		{[]string{"restore", guid1, "-bucket", "bkt", "-timestamp", "yesterday"}, "RFC 3339"},
		{[]string{"restore", "-all", "-bucket", "bkt"}, "-all needs -o DIR"},
		{[]string{"restore", "-all", "-o", "d", "-bucket", "bkt", "-txid", "3"}, "use -timestamp with -all"},
		{[]string{"restore", "Bad Name", "-bucket", "bkt"}, "tenant name"},
		{[]string{"restore", guid1}, "no bucket"},
		{[]string{"restore", "-o", "x.db", "s3://"}, "no bucket"},
		{[]string{"restore", "/data/" + guid1 + ".db", "-bucket", "bkt"}, "is a path, not a tenant name"},
		{[]string{"restore", guid1, "-bucket", "bkt", "-match", "x*"}, "go with -all"},
		{[]string{"restore", guid1, "-bucket", "bkt", "-source", "v4"}, "-source"},
	} {
		code, text := runLitefleet(t, env, tt.args...)
		if code != 2 || !strings.Contains(text, tt.want) {
			t.Errorf("%q: exit %d, want 2 and %q:\n%s", tt.args, code, tt.want, text)
		}
	}
}

// TestRestoreKilledLeavesNothingForLong: a restore killed with SIGKILL
// leaves its temporary file; the next restore into the same folder removes
// it, and finishes.
func TestRestoreKilledLeavesNothingForLong(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	src := filepath.Join(t.TempDir(), guid3+".db")
	db := testpeer.OpenDB(t, src)
	testpeer.InsertBlobs(t, db, 0, 40, 1<<20) // 40 MB: long enough to kill mid-way
	ls := testpeer.Replicate(t, srv, conn, testpeer.V5, src, guid3)
	ls.Sync()
	ls.Stop()

	dir := t.TempDir()
	out := filepath.Join(dir, guid3+".db")
	env := testpeer.CredEnv(srv)
	args := []string{"restore", guid3, "-o", out, "-bucket", conn.Bucket, "-endpoint", srv.Endpoint}
	temps := func() []string {
		m, _ := filepath.Glob(filepath.Join(dir, ".*.restore-*"))
		return m
	}
	p := startLitefleet(t, env, args...)
	testpeer.Eventually(t, 30*time.Second, "the restore's temporary file", func() bool {
		for _, m := range temps() {
			if fi, err := os.Stat(m); err == nil && strings.HasSuffix(m, ".tmp") && fi.Size() > 0 {
				return true
			}
		}
		return false
	})
	if err := p.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p.Wait(10 * time.Second)
	if len(temps()) == 0 {
		t.Fatal("the killed restore left nothing: the test did not kill it mid-way")
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a killed restore left a file at the output")
	}
	if code, text := runLitefleet(t, env, args...); code != 0 {
		t.Fatalf("the next restore: exit %d:\n%s", code, text)
	}
	if left := temps(); len(left) > 0 {
		t.Fatalf("stale temporaries left: %v", left)
	}
	testpeer.SameRows(t, testpeer.Restored(t, out), testpeer.Rows(t, src))
}
