package verify_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/superfly/ltx"
	"golang.org/x/time/rate"
	_ "modernc.org/sqlite"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/verify"
)

func TestMain(m *testing.M) { os.Exit(s3test.Main(m)) }

const pageSize = 4096

// history is a real SQLite database written one transaction at a time,
// with the file's bytes after each: the states a replicator would have
// uploaded, TXID i being states[i-1].
type history struct {
	states [][]byte
}

// newHistory writes txs transactions into a new database; each inserts
// rows of the same length, so that two histories of other seeds have the
// same pages at the same TXIDs with other content.
func newHistory(t *testing.T, seed string, txs int) *history {
	t.Helper()
	path := filepath.Join(t.TempDir(), "h.db")
	h := &history{}
	for i := range txs {
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		stmts := []string{fmt.Sprintf("PRAGMA page_size=%d", pageSize), "PRAGMA journal_mode=DELETE",
			"CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)"}
		for j := range 40 {
			stmts = append(stmts, fmt.Sprintf("INSERT INTO t (v) VALUES ('%s-%04d-%04d-%s')", seed, i, j, strings.Repeat(seed, 40)))
		}
		for _, s := range stmts {
			if _, err := db.Exec(s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		// The test's own file, no connection open on it.
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		h.states = append(h.states, b)
	}
	return h
}

// ltxFile encodes the change from TXID min-1 to TXID max (a snapshot when
// min is 1) as Litestream v0.5.18 writes it: without database checksums.
func (h *history) ltxFile(t *testing.T, minTXID, maxTXID int) []byte {
	t.Helper()
	var prev []byte
	if minTXID > 1 {
		prev = h.states[minTXID-2]
	}
	cur := h.states[maxTXID-1]
	var buf bytes.Buffer
	enc, err := ltx.NewEncoder(&buf)
	if err != nil {
		t.Fatal(err)
	}
	commit := uint32(len(cur) / pageSize)
	if err := enc.EncodeHeader(ltx.Header{Version: ltx.Version, Flags: ltx.HeaderFlagNoChecksum, PageSize: pageSize, Commit: commit,
		MinTXID: ltx.TXID(minTXID), MaxTXID: ltx.TXID(maxTXID), Timestamp: time.Now().UnixMilli()}); err != nil {
		t.Fatal(err)
	}
	for pgno := uint32(1); pgno <= commit; pgno++ {
		page := cur[(pgno-1)*pageSize : pgno*pageSize]
		if off := int(pgno-1) * pageSize; off+pageSize <= len(prev) && bytes.Equal(prev[off:off+pageSize], page) {
			continue
		}
		if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, page); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// checksum is the database's LTX checksum at txid: what a host records.
func (h *history) checksum(txid int) string {
	var sum ltx.Checksum
	st := h.states[txid-1]
	for pgno := uint32(1); int(pgno)*pageSize <= len(st); pgno++ {
		sum ^= ltx.ChecksumPage(pgno, st[(pgno-1)*pageSize:pgno*pageSize])
	}
	return (sum | ltx.ChecksumFlag).String()
}

type fixture struct {
	t      *testing.T
	conn   s3conn.Conn
	client *s3.Client
}

func newFixture(t *testing.T) *fixture {
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	return &fixture{t: t, conn: conn, client: srv.Client(t, conn)}
}

func (f *fixture) key(tenant string, level, minTXID, maxTXID int) string {
	return fmt.Sprintf("%s/%04x/%s", f.conn.TenantPath(tenant), level, ltx.FormatFilename(ltx.TXID(minTXID), ltx.TXID(maxTXID)))
}

func (f *fixture) put(key string, body []byte) {
	f.t.Helper()
	if _, err := f.client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(f.conn.Bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
		f.t.Fatalf("put %s: %v", key, err)
	}
}

func (f *fixture) del(key string) {
	f.t.Helper()
	if _, err := f.client.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(f.conn.Bucket), Key: aws.String(key)}); err != nil {
		f.t.Fatalf("delete %s: %v", key, err)
	}
}

// replicate uploads h as a replicator would have: one level-0 file per
// TXID, and a level-1 compaction of the first three.
func (f *fixture) replicate(tenant string, h *history) {
	f.t.Helper()
	for i := 1; i <= len(h.states); i++ {
		f.put(f.key(tenant, 0, i, i), h.ltxFile(f.t, i, i))
	}
	if len(h.states) >= 3 {
		f.put(f.key(tenant, 1, 1, 3), h.ltxFile(f.t, 1, 3))
	}
}

// record publishes a live host's record saying the tenant is replicated
// at txid with the database checksum sum.
func (f *fixture) record(host, tenant string, txid int, sum string) {
	f.t.Helper()
	f.put(layout.HeartbeatKey(host), []byte(`{"host":"`+host+`","seq":1}`))
	body, err := hosts.EncodeRecord(&hosts.Record{Host: host, At: time.Now().UTC(), Tenants: []hosts.TenantRecord{
		{Name: tenant, State: "sleeping", Local: uint64(txid), Replicated: uint64(txid), Checksum: sum},
	}})
	if err != nil {
		f.t.Fatal(err)
	}
	f.put(layout.RecordKey(host), body)
}

// verifyOne runs verify on one tenant as the command does (host records
// read, restored copies in a folder of its own) and returns its report.
func (f *fixture) verifyOne(tenant string, opt verify.Options) *verify.Report {
	f.t.Helper()
	opt.Conn = f.conn
	tmp := f.t.TempDir()
	opt.TempDir = tmp
	var got []*verify.Report
	_, err := verify.Run(context.Background(), f.client, verify.RunOptions{Options: opt, Tenants: []string{tenant}}, func(r *verify.Report) { got = append(got, r) })
	if err != nil {
		f.t.Fatalf("verify: %v", err)
	}
	if len(got) != 1 {
		f.t.Fatalf("%d reports", len(got))
	}
	// The restored copy and its folder are gone.
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		f.t.Fatalf("verify left %d entries in its temporary folder", len(ents))
	}
	return got[0]
}

func expect(t *testing.T, r *verify.Report, verdict, reason string) {
	t.Helper()
	if r.Verdict != verdict || !strings.Contains(r.Reason, reason) {
		t.Fatalf("verdict %q (%s), want %q with %q; report %+v", r.Verdict, r.Reason, verdict, reason, r)
	}
}

const tenant = "11111111-2222-3333-4444-555555555555"

func TestVerified(t *testing.T) {
	f := newFixture(t)
	h := newHistory(t, "a", 5)
	f.replicate(tenant, h)
	f.record("web-1", tenant, 5, h.checksum(5))
	r := f.verifyOne(tenant, verify.Options{})
	expect(t, r, verify.Verified, "equals host web-1's record")
	if r.TXID != 5 || r.Checksum != h.checksum(5) || r.Integrity != "ok" || r.Files != 6 || r.Time.IsZero() {
		t.Fatalf("report %+v", r)
	}

	// The host's record a TXID behind the latest (its next record not yet
	// written): that TXID is the one restored and compared.
	f.record("web-1", tenant, 4, h.checksum(4))
	r = f.verifyOne(tenant, verify.Options{})
	expect(t, r, verify.Verified, "TXID 0000000000000004")
	if r.TXID != 4 || r.Latest.TXID != 5 {
		t.Fatalf("report %+v", r)
	}
}

func TestUnverifiableWithoutRecord(t *testing.T) {
	f := newFixture(t)
	f.replicate(tenant, newHistory(t, "a", 4))
	r := f.verifyOne(tenant, verify.Options{})
	expect(t, r, verify.Unverifiable, "no record of the primary's state")
	if verify.Failed(r.Verdict) || r.TXID != 4 || r.Integrity != "ok" {
		t.Fatalf("report %+v", r)
	}
	if got := r.Line(); !strings.HasPrefix(got, "unverifiable: no record of the primary's state") {
		t.Fatalf("line %q", got)
	}
}

func TestMismatchAnotherHistory(t *testing.T) {
	f := newFixture(t)
	a, b := newHistory(t, "a", 5), newHistory(t, "b", 5)
	f.replicate(tenant, a)
	f.record("web-1", tenant, 5, a.checksum(5))
	// The newest file replaced by a valid one of another history, same
	// TXIDs: every file is sound, the chain whole, the restore clean.
	f.put(f.key(tenant, 0, 5, 5), b.ltxFile(t, 5, 5))
	r := f.verifyOne(tenant, verify.Options{})
	expect(t, r, verify.Mismatch, "are not what the primary held")
	if r.TXID != 5 || r.Integrity != "ok" || r.Checksum == a.checksum(5) {
		t.Fatalf("report %+v", r)
	}
}

func TestMismatchCompaction(t *testing.T) {
	f := newFixture(t)
	a, b := newHistory(t, "a", 5), newHistory(t, "b", 5)
	f.replicate(tenant, a)
	// A level-0 file inside the compaction's range, of another history:
	// the compaction no longer equals the files it replaced.
	f.put(f.key(tenant, 0, 2, 2), b.ltxFile(t, 2, 2))
	r := f.verifyOne(tenant, verify.Options{})
	expect(t, r, verify.Mismatch, "disagrees with the 3 level-0 file(s) it replaces")
}

func TestBrokenChainFlippedBytes(t *testing.T) {
	f := newFixture(t)
	h := newHistory(t, "a", 5)
	f.replicate(tenant, h)
	f.record("web-1", tenant, 5, h.checksum(5))
	body := h.ltxFile(t, 4, 4)
	body[len(body)/2] ^= 0xff
	f.put(f.key(tenant, 0, 4, 4), body)
	r := f.verifyOne(tenant, verify.Options{})
	expect(t, r, verify.BrokenChain, "0000/0000000000000004-0000000000000004.ltx: corrupt")
}

// A file cut short after its pages (its trailer partly gone) is corrupt:
// its chain is broken. (Decoder.Close goes through restore.CloseDecoder,
// which turns the panic FuzzApplyLTX found in ltx on some cut objects
// into an error.)
func TestBrokenChainTruncatedFile(t *testing.T) {
	f := newFixture(t)
	h := newHistory(t, "a", 5)
	f.replicate(tenant, h)
	f.record("web-1", tenant, 5, h.checksum(5))
	body := h.ltxFile(t, 4, 4)
	f.put(f.key(tenant, 0, 4, 4), body[:len(body)-20])
	r := f.verifyOne(tenant, verify.Options{})
	expect(t, r, verify.BrokenChain, "0000/0000000000000004-0000000000000004.ltx: corrupt")
}

func TestBrokenChainMissingFile(t *testing.T) {
	f := newFixture(t)
	h := newHistory(t, "a", 6)
	f.replicate(tenant, h)
	f.record("web-1", tenant, 6, h.checksum(6))
	f.del(f.key(tenant, 0, 4, 4))
	r := f.verifyOne(tenant, verify.Options{})
	expect(t, r, verify.BrokenChain, "level 0: TXIDs 0000000000000004 to 0000000000000004 are missing")
	if !strings.Contains(strings.Join(r.Problems, "\n"), "cannot be reached from a snapshot: the chain ends at 0000000000000003") {
		t.Fatalf("problems %q", r.Problems)
	}
}

func TestBrokenChainStrayObjects(t *testing.T) {
	f := newFixture(t)
	h := newHistory(t, "a", 3)
	f.replicate(tenant, h)
	f.record("web-1", tenant, 3, h.checksum(3))
	// An upload begun under the prefix and never finished, while no live
	// lease holds the tenant: nobody will complete it.
	key := f.key(tenant, 0, 4, 4)
	up, err := f.client.CreateMultipartUpload(context.Background(), &s3.CreateMultipartUploadInput{Bucket: aws.String(f.conn.Bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	r := f.verifyOne(tenant, verify.Options{})
	expect(t, r, verify.BrokenChain, "abandoned multipart upload(s) under the prefix: "+key+" (upload "+aws.ToString(up.UploadId))
	if _, err := f.client.AbortMultipartUpload(context.Background(), &s3.AbortMultipartUploadInput{Bucket: aws.String(f.conn.Bucket), Key: aws.String(key), UploadId: up.UploadId}); err != nil {
		t.Fatal(err)
	}
	expect(t, f.verifyOne(tenant, verify.Options{}), verify.Verified, "")

	f.put(f.conn.TenantPath(tenant)+"/notes.txt", []byte("hello"))
	expect(t, f.verifyOne(tenant, verify.Options{}), verify.BrokenChain, "1 stray object(s) under the prefix that are not Litestream's: "+f.conn.TenantPath(tenant)+"/notes.txt")
}

func TestOutsideWindowBehindRecord(t *testing.T) {
	f := newFixture(t)
	h := newHistory(t, "a", 5)
	f.replicate(tenant, h)
	// The host says S3 acknowledged TXID 6; the replica ends at 5.
	f.record("web-1", tenant, 6, "")
	r := f.verifyOne(tenant, verify.Options{})
	expect(t, r, verify.OutsideWindow, "behind TXID 0000000000000006 that host web-1 recorded as acknowledged by S3")
	if r.TXID != 5 {
		t.Fatalf("report %+v", r)
	}
}

func TestOutsideWindowRetention(t *testing.T) {
	f := newFixture(t)
	h := newHistory(t, "a", 5)
	// Retention left one snapshot, taken now: nothing older to restore.
	f.put(f.key(tenant, 9, 1, 5), h.ltxFile(t, 1, 5))
	f.record("web-1", tenant, 5, h.checksum(5))
	r := f.verifyOne(tenant, verify.Options{Window: time.Hour})
	expect(t, r, verify.OutsideWindow, "the oldest restore point is TXID 0000000000000005")
	// Within a window it covers, the same replica is verified.
	now := time.Now().Add(2 * time.Hour)
	expect(t, f.verifyOne(tenant, verify.Options{Window: time.Hour, Now: func() time.Time { return now }}), verify.Verified, "")
}

func TestUnrestorable(t *testing.T) {
	f := newFixture(t)
	h := newHistory(t, "a", 3)
	// The table's root page damaged in the database itself, then
	// replicated as it is: every LTX checksum is valid (it was written
	// so), but the database is not.
	for _, st := range h.states {
		copy(st[pageSize+3:pageSize+5], []byte{0xff, 0xff}) // page 2's cell count
	}
	f.replicate(tenant, h)
	f.record("web-1", tenant, 3, h.checksum(3))
	r := f.verifyOne(tenant, verify.Options{})
	expect(t, r, verify.Unrestorable, "the restore failed: integrity check: database disk image is malformed")
}

func TestRunAllSummary(t *testing.T) {
	f := newFixture(t)
	good, bad := "aaaaaaaa-0000-0000-0000-000000000001", "aaaaaaaa-0000-0000-0000-000000000002"
	h := newHistory(t, "a", 3)
	f.replicate(good, h)
	f.replicate(bad, h)
	f.del(f.key(bad, 0, 2, 2))
	f.del(f.key(bad, 1, 1, 3))
	// A third tenant's abandoned upload, found by the run's one listing of
	// the bucket's uploads.
	third := "aaaaaaaa-0000-0000-0000-000000000003"
	f.replicate(third, h)
	if _, err := f.client.CreateMultipartUpload(context.Background(), &s3.CreateMultipartUploadInput{Bucket: aws.String(f.conn.Bucket), Key: aws.String(f.key(third, 0, 4, 4))}); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	sum, err := verify.Run(context.Background(), f.client, verify.RunOptions{Options: verify.Options{Conn: f.conn, TempDir: t.TempDir()}, All: true, Parallel: 2},
		func(r *verify.Report) { got[r.Tenant] = r.Line() })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || sum.Tenants != 3 || sum.Failed != 2 || sum.Verdicts[verify.BrokenChain] != 2 || sum.Verdicts[verify.Unverifiable] != 1 ||
		!strings.HasPrefix(got[third], "broken chain") || !strings.HasPrefix(got[bad], "broken chain") || !strings.HasPrefix(got[good], "unverifiable: no record") {
		t.Fatalf("reports %q, summary %+v", got, sum)
	}
}

// TestBandwidthCap: a verification given a cap downloads no faster than
// it, and still proves the tenant.
func TestBandwidthCap(t *testing.T) {
	f := newFixture(t)
	h := newHistory(t, "a", 5)
	f.replicate(tenant, h)
	f.record("web-1", tenant, 5, h.checksum(5))
	free := f.verifyOne(tenant, verify.Options{})
	expect(t, free, verify.Verified, "")
	// A cap of what it reads in a second, with a burst of 1 KiB (so small
	// a replica is under NewBandwidth's least burst): the first KiB is
	// free, the rest takes at least (bytes - 1 KiB) / cap.
	limit, burst := free.Bytes, 1024
	t0 := time.Now()
	r := f.verifyOne(tenant, verify.Options{Bandwidth: rate.NewLimiter(rate.Limit(limit), burst)})
	took := time.Since(t0)
	expect(t, r, verify.Verified, "")
	if least := time.Duration(float64(r.Bytes-int64(burst)) / float64(limit) * float64(time.Second)); took < least {
		t.Fatalf("%d bytes at %d bytes/s in %s: want at least %s", r.Bytes, limit, took, least)
	}
	t.Logf("%d bytes: %s uncapped, %s at %d bytes/s", r.Bytes, time.Duration(free.DurationMS)*time.Millisecond, took, limit)
}
