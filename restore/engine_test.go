package restore

// Unit tests of the LTX restore engine: LTX files made here from the pages
// of a real SQLite database at three points, with checksums tracked (which
// Litestream v0.5.18 does not write, so the integration tests cannot cover
// the checksum path), served by an in-memory S3.

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/superfly/ltx"
	_ "modernc.org/sqlite"

	"github.com/litefleet/litefleet/s3conn"
)

// engS3 is the part of S3 that restore reads, in memory.
type engS3 struct {
	mu       sync.Mutex
	objects  map[string][]byte
	goneOnce map[string]bool // the next GET of these keys answers NoSuchKey
}

func (m *engS3) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []string
	for k := range m.objects {
		if strings.HasPrefix(k, aws.ToString(in.Prefix)) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	out := &s3.ListObjectsV2Output{IsTruncated: aws.Bool(false)}
	for _, k := range keys {
		out.Contents = append(out.Contents, types.Object{Key: aws.String(k), Size: aws.Int64(int64(len(m.objects[k]))), LastModified: aws.Time(time.Now())})
	}
	return out, nil
}

func (m *engS3) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := aws.ToString(in.Key)
	data, ok := m.objects[key]
	if !ok || m.goneOnce[key] {
		delete(m.goneOnce, key)
		return nil, &types.NoSuchKey{}
	}
	if r := aws.ToString(in.Range); r != "" {
		from, to, _ := strings.Cut(strings.TrimPrefix(r, "bytes="), "-")
		f, _ := strconv.Atoi(from)
		t := len(data) - 1
		if to != "" {
			t, _ = strconv.Atoi(to)
		}
		data = data[f:min(t+1, len(data))]
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(data)), ContentLength: aws.Int64(int64(len(data)))}, nil
}

const engineTenant = "engine-test"

// engStates writes a database through three transactions and returns its
// file after each: grown, changed, then shrunk by a VACUUM.
func engStates(t *testing.T) [][]byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "src.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(delete)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var states [][]byte
	for _, q := range []string{
		`CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX t_v ON t(v);
		 WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 400) INSERT INTO t (v) SELECT hex(randomblob(200)) FROM c`,
		`UPDATE t SET v = 'changed-' || id WHERE id % 7 = 0;
		 WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 200) INSERT INTO t (v) SELECT hex(randomblob(300)) FROM c`,
		`DELETE FROM t WHERE id > 100; VACUUM`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		states = append(states, b)
	}
	if len(states[2]) >= len(states[1]) {
		t.Fatalf("the VACUUM did not shrink the database: %d then %d bytes", len(states[1]), len(states[2]))
	}
	return states
}

const enginePageSize = 4096

func engChecksum(db []byte) ltx.Checksum {
	var sum ltx.Checksum
	for i := 0; i*enginePageSize < len(db); i++ {
		sum ^= ltx.ChecksumPage(uint32(i+1), db[i*enginePageSize:(i+1)*enginePageSize])
	}
	return ltx.ChecksumFlag | sum
}

// engEncodeLTX makes the LTX file that takes a database from prev (nil: a
// snapshot) to next, with checksums tracked.
func engEncodeLTX(t *testing.T, minTXID, maxTXID ltx.TXID, prev, next []byte, post ltx.Checksum) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc, err := ltx.NewEncoder(&buf)
	if err != nil {
		t.Fatal(err)
	}
	hdr := ltx.Header{Version: ltx.Version, PageSize: enginePageSize, Commit: uint32(len(next) / enginePageSize),
		MinTXID: minTXID, MaxTXID: maxTXID, Timestamp: time.Now().UnixMilli()}
	if minTXID > 1 {
		hdr.PreApplyChecksum = engChecksum(prev)
	}
	if err := enc.EncodeHeader(hdr); err != nil {
		t.Fatal(err)
	}
	for i := 0; i*enginePageSize < len(next); i++ {
		page := next[i*enginePageSize : (i+1)*enginePageSize]
		if minTXID > 1 && (i+1)*enginePageSize <= len(prev) && bytes.Equal(page, prev[i*enginePageSize:(i+1)*enginePageSize]) {
			continue // unchanged: not in an incremental file
		}
		if err := enc.EncodePage(ltx.PageHeader{Pgno: uint32(i + 1)}, page); err != nil {
			t.Fatal(err)
		}
	}
	enc.SetPostApplyChecksum(post)
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// engReplica is a replica with three transactions: an L1 file that
// compacts the first two, and the three L0 files.
func engReplica(t *testing.T) (*engS3, s3conn.Conn, [][]byte, map[string]string) {
	t.Helper()
	s := engStates(t)
	conn := s3conn.Conn{Bucket: "bkt", Prefix: "databases"}
	root := conn.TenantPath(engineTenant)
	keys := map[string]string{
		"L0-1": root + "/0000/" + ltx.FormatFilename(1, 1),
		"L0-2": root + "/0000/" + ltx.FormatFilename(2, 2),
		"L0-3": root + "/0000/" + ltx.FormatFilename(3, 3),
		"L1":   root + "/0001/" + ltx.FormatFilename(1, 2),
	}
	m := &engS3{goneOnce: map[string]bool{}, objects: map[string][]byte{
		keys["L0-1"]: engEncodeLTX(t, 1, 1, nil, s[0], engChecksum(s[0])),
		keys["L0-2"]: engEncodeLTX(t, 2, 2, s[0], s[1], engChecksum(s[1])),
		keys["L0-3"]: engEncodeLTX(t, 3, 3, s[1], s[2], engChecksum(s[2])),
		keys["L1"]:   engEncodeLTX(t, 1, 2, nil, s[1], engChecksum(s[1])),
	}}
	return m, conn, s, keys
}

func TestRestoreEngineAppliesPlans(t *testing.T) {
	m, conn, states, keys := engReplica(t)
	ctx := context.Background()
	dir := t.TempDir()
	for _, tt := range []struct {
		txid  uint64
		want  []byte
		files []string
	}{
		{0, states[2], []string{keys["L1"], keys["L0-3"]}}, // latest: the compaction, then the shrink
		{2, states[1], []string{keys["L1"]}},
		{1, states[0], []string{keys["L0-1"]}},
	} {
		out := filepath.Join(dir, fmt.Sprintf("txid-%d.db", tt.txid))
		res, err := Run(ctx, m, Options{Conn: conn, Tenant: engineTenant, Output: out, TXID: tt.txid})
		if err != nil {
			t.Fatalf("TXID %d: %v", tt.txid, err)
		}
		got, _ := os.ReadFile(out)
		if !bytes.Equal(got, tt.want) {
			t.Errorf("TXID %d: restored %d bytes that differ from the database's %d", tt.txid, len(got), len(tt.want))
		}
		var files []string
		for _, f := range res.Plan.Files {
			files = append(files, f.Key)
		}
		if !slices.Equal(files, tt.files) {
			t.Errorf("TXID %d: plan %q, want %q", tt.txid, files, tt.files)
		}
		if res.Checksum != engChecksum(tt.want).String() || res.Integrity != "ok" {
			t.Errorf("TXID %d: checksum %q, integrity %q", tt.txid, res.Checksum, res.Integrity)
		}
		if res.Current != (tt.txid == 0) || res.Latest.TXID != 3 {
			t.Errorf("TXID %d: current %v, latest %+v", tt.txid, res.Current, res.Latest)
		}
	}
}

func TestRestoreEngineReplansWhenAnObjectIsGone(t *testing.T) {
	m, conn, states, keys := engReplica(t)
	m.goneOnce[keys["L0-3"]] = true
	out := filepath.Join(t.TempDir(), "x.db")
	if _, err := Run(context.Background(), m, Options{Conn: conn, Tenant: engineTenant, Output: out}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, states[2]) {
		t.Fatal("the restore after a new plan differs from the database")
	}
}

func TestRestoreEngineRefusesWhatDoesNotAddUp(t *testing.T) {
	for _, tt := range []struct {
		name   string
		damage func(m *engS3, keys map[string]string, s [][]byte, t *testing.T)
		want   string
	}{
		{"post-apply checksum", func(m *engS3, keys map[string]string, s [][]byte, t *testing.T) {
			m.objects[keys["L0-3"]] = engEncodeLTX(t, 3, 3, s[1], s[2], engChecksum(s[1]))
		}, "differs from"},
		{"flipped byte", func(m *engS3, keys map[string]string, _ [][]byte, _ *testing.T) {
			b := m.objects[keys["L1"]]
			b[len(b)/2] ^= 1
		}, "object databases/engine-test/0001/0000000000000001-0000000000000002.ltx: corrupt"},
		{"truncated", func(m *engS3, keys map[string]string, _ [][]byte, _ *testing.T) {
			m.objects[keys["L0-3"]] = m.objects[keys["L0-3"]][:200]
		}, "object databases/engine-test/0000/0000000000000003-0000000000000003.ltx: corrupt"},
		{"missing pages", func(m *engS3, keys map[string]string, s [][]byte, t *testing.T) {
			// The last file says the database grew by five pages, and
			// holds none of them.
			var buf bytes.Buffer
			enc, _ := ltx.NewEncoder(&buf)
			if err := enc.EncodeHeader(ltx.Header{Version: ltx.Version, PageSize: enginePageSize, Commit: uint32(len(s[1])/enginePageSize) + 5,
				MinTXID: 3, MaxTXID: 3, Timestamp: time.Now().UnixMilli(), PreApplyChecksum: engChecksum(s[1])}); err != nil {
				t.Fatal(err)
			}
			if err := enc.EncodePage(ltx.PageHeader{Pgno: 1}, s[2][:enginePageSize]); err != nil {
				t.Fatal(err)
			}
			enc.SetPostApplyChecksum(engChecksum(s[2]))
			if err := enc.Close(); err != nil {
				t.Fatal(err)
			}
			m.objects[keys["L0-3"]] = buf.Bytes()
		}, "incomplete"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, conn, s, keys := engReplica(t)
			tt.damage(m, keys, s, t)
			dir := t.TempDir()
			_, err := Run(context.Background(), m, Options{Conn: conn, Tenant: engineTenant, Output: filepath.Join(dir, "x.db")})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "nothing was written") {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Fatalf("left %v in the folder", ents)
			}
		})
	}
}

func TestRestoreEngineCancelled(t *testing.T) {
	m, conn, _, _ := engReplica(t)
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	_, err := Run(ctx, m, Options{Conn: conn, Tenant: engineTenant, Output: filepath.Join(dir, "x.db"),
		Progress: func(done, total int64) { cancel() }})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "restore cancelled: nothing was written") {
		t.Fatalf("error %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left %v in the folder", ents)
	}
}
