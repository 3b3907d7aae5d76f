package s3browse_test

// Integration tests: a real S3 server (versitygw, through internal/s3test)
// and replicas written by the real Litestream commands, v0.5.18 and the
// legacy v0.3.14. Skipped with -short.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/untrusted"
)

func TestIntegrationLitestreamV5(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	client := srv.Client(t, conn)
	const tenant = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"

	dbPath := filepath.Join(t.TempDir(), tenant+".db")
	start := time.Now().Add(-time.Second).Truncate(time.Second)
	db := testpeer.OpenDB(t, dbPath)
	r := testpeer.Replicate(t, srv, conn, testpeer.V5, dbPath, tenant)
	for i := range 10 { // ten syncs, each a level-0 file
		testpeer.InsertRows(t, db, i*5, 5)
		r.Sync()
	}
	r.Stop()

	// Litestream's own listing is the oracle for what is on the server.
	var oracle []struct {
		Level   int    `json:"level"`
		MinTXID string `json:"min_txid"`
		MaxTXID string `json:"max_txid"`
		Size    int64  `json:"size"`
	}
	out := r.Command("ltx", "-config", r.Config, "-level", "all", "-json", dbPath)
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
	if s.Name != tenant || !s.Valid || s.Format != s3browse.FormatLTX || s.LatestTXID != wantLatest || s.LatestTXIDHex != layout.TXIDHex(wantLatest) {
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
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	client := srv.Client(t, conn)
	const tenant = "legacy-001"

	dbPath := filepath.Join(t.TempDir(), "legacy-client.db")
	db := testpeer.OpenDB(t, dbPath)
	r := testpeer.Replicate(t, srv, conn, testpeer.V3, dbPath, tenant)
	w := testpeer.StartWriter(db, 0, 20*time.Millisecond)
	testpeer.WaitInS3(t, client, conn, tenant, "a snapshot and WAL segments", func(tn *s3browse.Tenant) bool {
		return tn.Snapshots > 0 && tn.WALSegments > 3
	})
	w.Stop(t)
	r.Stop()

	// The v0.3 command's own listings are the oracle.
	var wantSnaps, wantWAL []string
	for _, row := range table(t, r.Command("snapshots", "-config", r.Config, dbPath)) {
		wantSnaps = append(wantSnaps, fmt.Sprintf("%s %s %s", row["generation"], row["index"], row["size"]))
	}
	for _, row := range table(t, r.Command("wal", "-config", r.Config, dbPath)) {
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
	testpeer.Integration(t)
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
			t.Fatalf("put %s: %v", untrusted.Printable(name), err)
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
