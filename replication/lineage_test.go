package replication_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/superfly/ltx"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/internal/s3proxy"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/replication"
	"github.com/litefleet/litefleet/restore"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/s3conn"
)

// otherHistory makes a database of its own rows and returns them with an
// L0 LTX file at txid that holds every page of it: a valid file of
// another history, as a deposed host's late upload would be.
func otherHistory(t *testing.T, txid uint64, first, n int, from string) ([]byte, []string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "other.db")
	if from != "" {
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeAndClose(t, path, first, n)
	want := rows(t, path)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const pageSize = 4096
	if len(data)%pageSize != 0 {
		t.Fatalf("%s is %d bytes: not pages of %d", path, len(data), pageSize)
	}
	var buf bytes.Buffer
	enc, err := ltx.NewEncoder(&buf)
	if err != nil {
		t.Fatal(err)
	}
	pages := len(data) / pageSize
	if err := enc.EncodeHeader(ltx.Header{Version: ltx.Version, Flags: ltx.HeaderFlagNoChecksum, PageSize: pageSize, Commit: uint32(pages),
		MinTXID: ltx.TXID(txid), MaxTXID: ltx.TXID(txid), Timestamp: time.Now().UnixMilli()}); err != nil {
		t.Fatal(err)
	}
	for pgno := 1; pgno <= pages; pgno++ {
		if err := enc.EncodePage(ltx.PageHeader{Pgno: uint32(pgno)}, data[(pgno-1)*pageSize:pgno*pageSize]); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), want
}

// plantStray writes an LTX file at key with an older generation's lineage
// metadata, as host-a would have uploaded it.
func plantStray(t *testing.T, api *s3.Client, bucket, key string, body []byte, gen string) {
	t.Helper()
	_, err := api.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		Metadata: map[string]string{hosts.MetaGeneration: gen, hosts.MetaHost: "host-a"}})
	if err != nil {
		t.Fatal(err)
	}
}

// heldAfterHostA starts host-b on a tenant whose lineage record says
// host-a wrote its first generation: host-b writes the second.
func heldAfterHostA(t *testing.T, api *s3.Client, conn s3conn.Conn, tenant string) {
	t.Helper()
	rec := &hosts.Lineage{Segments: []hosts.Segment{{Generation: 1, Host: "host-a", ClaimGeneration: 1, At: time.Now()}}}
	if _, err := hosts.WriteLineage(context.Background(), api, conn.Bucket, conn.TenantPath(tenant), rec, "", true); err != nil {
		t.Fatal(err)
	}
}

// generations reads the lineage generation of every LTX file of a tenant.
func generations(t *testing.T, api *s3.Client, conn s3conn.Conn, tenant string) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	for key := range listKeys(t, api, conn.Bucket, conn.TenantPath(tenant)+"/") {
		if !strings.HasSuffix(key, ".ltx") {
			continue
		}
		head, err := api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(conn.Bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		out[key] = head.Metadata[hosts.MetaGeneration]
	}
	return out
}

// TestStrayFilesAreArchived reproduces issue 17's late write: host-a
// replicates a tenant (the lineage's first generation) and is deposed;
// host-b takes it on from a restored copy (the second). Just before
// host-b's first upload reaches S3, valid LTX files of host-a's history,
// with its generation's metadata, land at that very key and at a key
// beyond it, as a deposed host's late uploads would. host-b's write is
// refused by the first; instead of stopping as diverged it moves both out
// of the tenant's prefix into the archive (the first with host-a's files
// it continues, so that it restores on its own) and writes its own file:
// the prefix holds one lineage, and both `litestream restore` and
// litefleet's return host-b's rows only.
func TestStrayFilesAreArchived(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	direct := srv.Conn(t)
	api := srv.Client(t, direct)
	dirA, dirB := t.TempDir(), t.TempDir()
	pathA, pathB := filepath.Join(dirA, guid1+".db"), filepath.Join(dirB, guid1+".db")
	writeAndClose(t, pathA, 0, 5)
	a, _ := start(t, replication.Options{Host: "host-a", SleepAfter: -1}, replication.Source{Dirs: []string{dirA}, DirConn: direct})
	since := waitSynced(t, a, pathA, 20*time.Second).LocalTXID
	closeEngine(t, a)
	if _, err := restore.Run(context.Background(), api, restore.Options{Conn: direct, Tenant: guid1, Output: pathB}); err != nil {
		t.Fatal(err)
	}

	// host-a's history goes on from the takeover point (its rows
	// 900..903), at the key host-b writes first; and again after a gap.
	next, beyond := since+1, since+3
	stray, theirs := otherHistory(t, next, 900, 4, pathA)
	later, _ := otherHistory(t, beyond, 950, 2, pathA)
	var once sync.Once
	conn, _ := proxied(t, srv, direct, s3proxy.Options{Fault: func(r s3proxy.Request) s3proxy.Fault {
		if r.Method == "PUT" && r.Key == l0Key(direct, guid1, next) {
			once.Do(func() {
				plantStray(t, api, direct.Bucket, l0Key(direct, guid1, next), stray, "1")
				plantStray(t, api, direct.Bucket, l0Key(direct, guid1, beyond), later, "1")
			})
		}
		return s3proxy.Fault{}
	}})
	b, logs := start(t, replication.Options{Host: "host-b", SleepAfter: -1}, replication.Source{Dirs: []string{dirB}, DirConn: conn})
	st := waitSynced(t, b, pathB, 20*time.Second)
	if !strings.Contains(logs.String(), "lineage segment begun: db="+guid1+" generation=2 since_txid="+ltx.TXID(since).String()) {
		t.Fatalf("host-b began no second generation from TXID %d:\n%s", since, logs)
	}

	// Writes, each synced before the next, until host-b's history passes
	// both keys.
	for i := 0; st.LocalTXID <= beyond; i++ {
		if i == 20 {
			t.Fatalf("host-b did not pass TXID %d: %+v", beyond, st)
		}
		prev := st.LocalTXID
		writeAndClose(t, pathB, 5+i, 1)
		testpeer.Eventually(t, 20*time.Second, "host-b syncs the write", func() bool {
			st = status(t, b, pathB)
			return st.LocalTXID > prev && st.ReplicatedTXID >= st.LocalTXID
		})
	}
	st = waitSynced(t, b, pathB, 20*time.Second)
	if st.State != replication.StateReplicating {
		t.Fatalf("host-b is %s (%s), want replicating", st.State, st.Reason)
	}
	if strings.Contains(logs.String(), "lineage conflict") || !strings.Contains(logs.String(), "stray files moved out") {
		t.Fatalf("the strays were not moved out, or made a lineage conflict:\n%s", logs)
	}

	// One lineage in the prefix: host-a's files up to the takeover point,
	// then host-b's.
	for key, gen := range generations(t, api, direct, guid1) {
		_, name, _ := strings.Cut(key, "/0000/")
		if lo, _, err := ltx.ParseFilename(name); gen != "2" && (err != nil || uint64(lo) > since) {
			t.Fatalf("%s of lineage generation %q is in the tenant's prefix beyond the takeover point, TXID %d", key, gen, since)
		}
	}
	want := rows(t, pathB)
	equalRows(t, "litestream restore", litestreamRestored(t, srv, direct, guid1), want)
	equalRows(t, "litefleet restore", restored(t, direct, guid1, 0), want)

	// The archive keeps the strays; the first restores on its own, with
	// host-a's files before it.
	archived := listKeys(t, api, direct.Bucket, layout.Root+"archive/databases/"+guid1+".stray-")
	file := func(txid uint64) string { return "/0000/" + ltx.FormatFilename(ltx.TXID(txid), ltx.TXID(txid)) }
	var root string
	for key := range archived {
		if r, ok := strings.CutSuffix(key, file(next)); ok {
			root = r
		}
	}
	if root == "" {
		t.Fatalf("no archive holds the stray at TXID %d: %v", next, archived)
	}
	if _, ok := archived[root+"-2"+file(beyond)]; !ok {
		t.Fatalf("no archive %s-2 holds the stray after a gap, at TXID %d: %v", root, beyond, archived)
	}
	arch := direct
	arch.Prefix = root[:strings.LastIndex(root, "/")]
	equalRows(t, "the archived strays", restored(t, arch, root[strings.LastIndex(root, "/")+1:], 0), theirs)
}

// TestRestoreFollowsOneLineage: stray files of an older generation in a
// tenant's prefix (its holder stopped before it could move them), one
// beyond its history and one within it, are skipped by litefleet's
// restore, which says so, and reported by inspect; the holder, starting
// again, sees that the files are not those it left, moves them out before
// its history check, and replicates on instead of reading as diverged.
func TestRestoreFollowsOneLineage(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	api := srv.Client(t, conn)
	heldAfterHostA(t, api, conn, guid2)
	dir := t.TempDir()
	path := filepath.Join(dir, guid2+".db")
	writeAndClose(t, path, 0, 5)
	eng, _ := start(t, replication.Options{Host: "host-b", SleepAfter: -1}, replication.Source{Dirs: []string{dir}, DirConn: conn})
	st := waitSynced(t, eng, path, 20*time.Second)
	closeEngine(t, eng)
	want := rows(t, path)

	// One stray beyond host-b's history, and one within it at a
	// compaction level, where Litestream's planner prefers it (one file
	// for the whole range) and no write of host-b's would meet it.
	next := st.LocalTXID + 1
	stray, _ := otherHistory(t, next, 900, 4, "")
	key := l0Key(conn, guid2, next)
	plantStray(t, api, conn.Bucket, key, stray, "1")
	whole, _ := otherHistory(t, 1, 950, 3, "")
	within := conn.TenantPath(guid2) + "/0001/" + ltx.FormatFilename(1, ltx.TXID(st.LocalTXID))
	plantStray(t, api, conn.Bucket, within, whole, "1")

	equalRows(t, "litefleet restore", restored(t, conn, guid2, 0), want)
	ctx := context.Background()
	plan, err := restore.NewPlan(ctx, api, restore.Options{Conn: conn, Tenant: guid2, Output: filepath.Join(t.TempDir(), "plan.db")})
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(plan.Notes, "\n")
	if len(plan.Strays) != 2 || !strings.Contains(notes, "stray file skipped: "+key) || !strings.Contains(notes, "stray file skipped: "+within) {
		t.Fatalf("the plan does not report the strays %s and %s: strays %+v, notes %q", within, key, plan.Strays, plan.Notes)
	}
	rep, err := s3browse.Inspect(ctx, api, conn, guid2)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.CheckLineage(ctx, api, conn, 64); err != nil {
		t.Fatal(err)
	}
	if len(rep.Lineage.Strays) != 2 || rep.Lineage.Strays[0].Key != key || rep.Lineage.Strays[1].Key != within || rep.Lineage.Strays[0].Generation != 1 {
		t.Fatalf("inspect reports strays %+v, want %s and %s of generation 1", rep.Lineage.Strays, key, within)
	}

	// host-b starts again: the stray is moved out, the tenant replicates.
	eng, _ = start(t, replication.Options{Host: "host-b", SleepAfter: -1}, replication.Source{Dirs: []string{dir}, DirConn: conn})
	waitSynced(t, eng, path, 20*time.Second)
	writeAndClose(t, path, 5, 2)
	testpeer.Eventually(t, 20*time.Second, "host-b replicates past the stray", func() bool {
		st := status(t, eng, path)
		return st.State == replication.StateReplicating && st.ReplicatedTXID >= next && st.ReplicatedTXID >= st.LocalTXID
	})
	for k, gen := range generations(t, api, conn, guid2) {
		if gen != "2" {
			t.Fatalf("%s of lineage generation %q is still in the tenant's prefix", k, gen)
		}
	}
	equalRows(t, "litestream restore", litestreamRestored(t, srv, conn, guid2), rows(t, path))
}

// TestStrayLandedWhileAsleep: a stray file of an older generation lands
// while the tenant sleeps, at a compaction level's key within the history
// host-b already holds, where no write of host-b's would meet it and
// where Litestream's restore prefers it (one file for the whole range).
// The wake's listing differs from what host-b left: it looks at the files
// and moves the stray out before Litestream reads them, so that restores
// return host-b's rows.
func TestStrayLandedWhileAsleep(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	api := srv.Client(t, conn)
	heldAfterHostA(t, api, conn, guid3)
	dir := t.TempDir()
	path := filepath.Join(dir, guid3+".db")
	writeAndClose(t, path, 0, 5)
	eng, logs := start(t, replication.Options{Host: "host-b", SleepAfter: 500 * time.Millisecond}, replication.Source{Dirs: []string{dir}, DirConn: conn})
	st := waitSynced(t, eng, path, 20*time.Second)
	waitState(t, eng, path, 20*time.Second, replication.StateSleeping)

	stray, _ := otherHistory(t, 1, 900, 4, "")
	key := conn.TenantPath(guid3) + "/0001/" + ltx.FormatFilename(1, ltx.TXID(st.LocalTXID))
	plantStray(t, api, conn.Bucket, key, stray, "1")

	writeAndClose(t, path, 5, 2)
	testpeer.Eventually(t, 20*time.Second, "host-b moves the stray out at the wake", func() bool {
		return strings.Contains(logs.String(), "took the history on: db="+guid3)
	})
	waitSynced(t, eng, path, 20*time.Second)
	if _, ok := listKeys(t, api, conn.Bucket, conn.TenantPath(guid3)+"/")[key]; ok {
		t.Fatalf("the stray %s is still in the tenant's prefix", key)
	}
	want := rows(t, path)
	equalRows(t, "litestream restore", litestreamRestored(t, srv, conn, guid3), want)
	equalRows(t, "litefleet restore", restored(t, conn, guid3, 0), want)
}
