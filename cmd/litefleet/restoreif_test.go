package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/restore"
)

// The summary's words hold for every mix: all failed, some restored, some
// left as they were (issue 20 item 20).
func TestRestoreAllFailedSummary(t *testing.T) {
	for _, tc := range []struct {
		sum    restore.Summary
		dryRun bool
		want   string
	}{
		{restore.Summary{Tenants: 6, Failed: 6}, false, "all 6 tenants failed, none was restored: see above"},
		{restore.Summary{Tenants: 1, Failed: 1}, false, "the tenant failed: see above"},
		{restore.Summary{Tenants: 6, Failed: 2, Restored: 4}, false, "2 of 6 tenants failed (4 restored): see above"},
		{restore.Summary{Tenants: 6, Failed: 2, Restored: 1, Existing: 2, NoBackup: 1}, false,
			"2 of 6 tenants failed (1 restored, 2 left as they were (-if-db-not-exists), 1 with nothing to restore (-if-replica-exists)): see above"},
		{restore.Summary{Tenants: 3, Failed: 1, Planned: 2}, true, "1 of 3 tenants failed (2 planned): see above"},
		{restore.Summary{Tenants: 3, Failed: 3}, true, "all 3 tenants failed, none was planned: see above"},
	} {
		if got := failedSummary(tc.sum, tc.dryRun); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.sum, got, tc.want)
		}
	}
}

// -if-db-not-exists and -if-replica-exists behave as litestream restore's
// (exit 0, nothing written: the file exists, or the tenant has no backup;
// the first without asking S3), and with -all per tenant (issue 20 item 1).
func TestRestoreIfDBNotExistsIfReplicaExists(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	src := filepath.Join(t.TempDir(), guid1+".db")
	testpeer.InsertRows(t, testpeer.OpenDB(t, src), 0, 20)
	restoreReplicate(t, srv, replicateArgs(srv, conn, "-dsn", src), guid1)
	want := testpeer.Rows(t, src)
	// guid2's prefix holds a lease and nothing to restore from.
	client := srv.Client(t, conn)
	if _, err := client.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(conn.Bucket), Key: aws.String("databases/" + guid2 + "/lock.json"), Body: bytes.NewReader([]byte("{}")),
	}); err != nil {
		t.Fatal(err)
	}
	env := testpeer.CredEnv(srv)
	ep := []string{"-bucket", conn.Bucket, "-endpoint", srv.Endpoint}
	dir := t.TempDir()

	// A brand-new tenant: an error without the flag, nothing with it.
	out2 := filepath.Join(dir, guid2+".db")
	if code, text := runLitefleet(t, env, append([]string{"restore", guid2, "-o", out2}, ep...)...); code == 0 {
		t.Fatalf("restore of a tenant with no backup exit 0:\n%s", text)
	}
	for _, extra := range [][]string{nil, {"-dry-run"}} {
		code, text := runLitefleet(t, env, append(append([]string{"restore", guid2, "-o", out2, "-if-replica-exists"}, extra...), ep...)...)
		if code != 0 || !strings.Contains(text, "tenant "+guid2+" has nothing to restore from: nothing restored (-if-replica-exists)") {
			t.Fatalf("-if-replica-exists %q: exit %d:\n%s", extra, code, text)
		}
	}
	// With -json, JSON.
	code, text := runLitefleet(t, env, append([]string{"restore", guid2, "-o", out2, "-if-replica-exists", "-json"}, ep...)...)
	var skipped struct{ Kind, Tenant string }
	if err := json.Unmarshal([]byte(text), &skipped); code != 0 || err != nil || skipped.Kind != "no backup" || skipped.Tenant != guid2 {
		t.Fatalf("-if-replica-exists -json: exit %d, %v:\n%s", code, err, text)
	}
	if _, err := os.Stat(out2); !os.IsNotExist(err) {
		t.Fatalf("%s written: %v", out2, err)
	}

	// The file exists: exit 0, untouched, and S3 is not asked (the
	// endpoint answers nothing).
	out1 := filepath.Join(dir, guid1+".db")
	if err := os.WriteFile(out1, []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, text = runLitefleet(t, env, "restore", guid1, "-o", out1, "-if-db-not-exists", "-bucket", conn.Bucket, "-endpoint", "http://127.0.0.1:1")
	if code != 0 || !strings.Contains(text, out1+" exists: nothing restored (-if-db-not-exists)") {
		t.Fatalf("-if-db-not-exists over a file: exit %d:\n%s", code, text)
	}
	if b, _ := os.ReadFile(out1); string(b) != "kept" {
		t.Fatalf("%s changed", out1)
	}

	// -all: without the flags both tenants fail, and the summary says so.
	code, text = runLitefleet(t, env, append([]string{"restore", "-all", "-o", dir}, ep...)...)
	if code != 1 || !strings.Contains(text, "all 2 tenants failed, none was restored") || strings.Contains(text, "the others were restored") {
		t.Fatalf("-all over an existing file and a tenant with no backup: exit %d:\n%s", code, text)
	}
	// With them, per tenant: guid1's file is left, guid2 passed over.
	code, text = runLitefleet(t, env, append([]string{"restore", "-all", "-o", dir, "-if-db-not-exists", "-if-replica-exists"}, ep...)...)
	for _, re := range []string{
		`(?m)^exists   ` + guid1 + `: .* left as it is \(-if-db-not-exists\)$`,
		`(?m)^no backup ` + guid2 + `: nothing to restore from \(-if-replica-exists\)$`,
		`(?m)^restore -all: 0 restored, 1 existing left, 1 with no backup, 0 failed, 0 skipped, of 2 tenants`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("output does not match %s", re)
		}
	}
	if code != 0 || t.Failed() {
		t.Fatalf("-all -if-db-not-exists -if-replica-exists: exit %d:\n%s", code, text)
	}
	if b, _ := os.ReadFile(out1); string(b) != "kept" {
		t.Fatalf("%s changed", out1)
	}
	// Once the file is gone, -all with the flags restores it.
	os.Remove(out1)
	code, text = runLitefleet(t, env, append([]string{"restore", "-all", "-o", dir, "-if-db-not-exists", "-if-replica-exists"}, ep...)...)
	if code != 0 || !regexp.MustCompile(`(?m)^restored `+guid1+` -> `).MatchString(text) {
		t.Fatalf("-all after the file went: exit %d:\n%s", code, text)
	}
	testpeer.SameRows(t, testpeer.Restored(t, out1), want)
}
