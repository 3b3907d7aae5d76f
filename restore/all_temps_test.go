package restore

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litefleet/litefleet/internal/s3test"
)

// TestAllParallelRestoresEveryTenantRepeatedly is issue 16's case 7:
// restore -all -parallel 16 of 200 small tenants into one folder, run
// after run, restores every tenant every time (parallel restores never
// remove each other's temporaries), each file holding its own tenant, and
// leaves no temporary behind, a dead restore's included. Against a real S3
// server; skipped with -short.
func TestAllParallelRestoresEveryTenantRepeatedly(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	const tenants, parallel, runs = 200, 16, 5
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	client := srv.Client(t, conn)
	ctx := context.Background()

	// One snapshot per tenant, each a database that names its tenant.
	names := make([]string, tenants)
	for i := range names {
		names[i] = fmt.Sprintf("7e5a%04x-0000-4000-8000-%012x", i, i)
		db := tenantDB(t, names[i])
		key := ltxKey(conn.TenantPath(names[i]), 0, 1, 1)
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(conn.Bucket), Key: aws.String(key),
			Body: bytes.NewReader(engEncodeLTX(t, 1, 1, nil, db, engChecksum(db)))}); err != nil {
			t.Fatal(err)
		}
	}

	dir := filepath.Join(t.TempDir(), "out")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// What a restore killed with SIGKILL leaves: a lock file nobody holds,
	// and its temporary.
	dead := filepath.Join(dir, ".x.db.restore-0123456789ab.tmp")
	for _, f := range []string{dead, dead + ".lock"} {
		if err := os.WriteFile(f, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	want := make([]string, tenants)
	for i, n := range names {
		want[i] = n + ".db"
	}
	slices.Sort(want)

	for run := 1; run <= runs; run++ {
		sum, err := All(ctx, client, AllOptions{Conn: conn, OutputDir: dir, Parallel: parallel}, nil)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if sum.Tenants != tenants || sum.Restored != tenants || sum.Failed != 0 {
			t.Fatalf("run %d: %d of %d tenants restored, %d failed: %+v", run, sum.Restored, sum.Tenants, sum.Failed, sum.Failures[:min(len(sum.Failures), 3)])
		}
		var got []string
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			got = append(got, e.Name())
		}
		if !slices.Equal(got, want) {
			t.Fatalf("run %d: folder holds %d files, want the %d databases and nothing else: %q", run, len(got), len(want), extra(got, want))
		}
		for _, n := range names {
			p := filepath.Join(dir, n+".db")
			if got := tenantOf(t, p); got != n {
				t.Fatalf("run %d: %s holds tenant %q", run, filepath.Base(p), got)
			}
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// tenantDB returns the bytes of a small database (rollback journal, so that
// it is one file) whose table names tenant.
func tenantDB(t *testing.T, tenant string) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "src.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(delete)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE tenant (name TEXT); INSERT INTO tenant VALUES (?)`, tenant); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tenantOf reads the tenant a restored database of tenantDB names.
func tenantOf(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var name string
	if err := db.QueryRow(`SELECT name FROM tenant`).Scan(&name); err != nil {
		t.Fatalf("%s: %v", filepath.Base(path), err)
	}
	return name
}

// extra lists what got and want do not share, for a failure message.
func extra(got, want []string) []string {
	var diff []string
	for _, g := range got {
		if !slices.Contains(want, g) {
			diff = append(diff, "+"+g)
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			diff = append(diff, "-"+w)
		}
	}
	return diff[:min(len(diff), 10)]
}
