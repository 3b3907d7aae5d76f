package replication_test

import (
	"bytes"
	"context"
	"io"
	"net/url"
	"path/filepath"
	"strconv"
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
	"github.com/litefleet/litefleet/replication"
	"github.com/litefleet/litefleet/s3conn"
)

// proxied puts a proxy in front of the test server and returns the
// connection through it.
func proxied(t *testing.T, srv *s3test.Server, conn s3conn.Conn, opt s3proxy.Options) (s3conn.Conn, *s3proxy.Proxy) {
	t.Helper()
	opt.Target = srv.Endpoint
	p, err := s3proxy.Start(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	conn.Endpoint = p.URL()
	return conn, p
}

// l0Key is the key of the level-0 LTX file of one TXID.
func l0Key(conn s3conn.Conn, tenant string, txid uint64) string {
	return conn.TenantPath(tenant) + "/0000/" + ltx.FormatFilename(ltx.TXID(txid), ltx.TXID(txid))
}

func getObject(t *testing.T, api *s3.Client, bucket, key string) []byte {
	t.Helper()
	out, err := api.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// multipartUploads lists the bucket's multipart uploads not completed nor
// aborted.
func multipartUploads(t *testing.T, api *s3.Client, bucket string) []string {
	t.Helper()
	out, err := api.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("list multipart uploads: %v", err)
	}
	var keys []string
	for _, u := range out.Uploads {
		keys = append(keys, aws.ToString(u.Key))
	}
	return keys
}

// TestDeposedHostsObjectIsNotOverwritten: an object at the key the tenant
// writes next (as a deposed host's late upload would leave it) is never
// replaced: S3 refuses the conditional PUT, the tenant sees a different
// object there, stops uploading and says why (diverged, with the key).
func TestDeposedHostsObjectIsNotOverwritten(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	path := filepath.Join(dir, guid1+".db")
	writeAndClose(t, path, 0, 5)
	eng, logs := start(t, replication.Options{SleepAfter: -1}, replication.Source{Dirs: []string{dir}, DirConn: conn})
	st := waitSynced(t, eng, path, 20*time.Second)

	api := srv.Client(t, conn)
	key := l0Key(conn, guid1, st.LocalTXID+1)
	theirs := []byte("an LTX file of another host's history, uploaded late")
	if _, err := api.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(conn.Bucket), Key: aws.String(key), Body: bytes.NewReader(theirs)}); err != nil {
		t.Fatal(err)
	}
	writeAndClose(t, path, 5, 3)

	// The tenant stops as diverged, naming the key. (A change of the file
	// then checks its history again, which cannot read that object: the
	// tenant waits, still uploading nothing.)
	stopped := `diverged: db=` + guid1 + ` reason="lineage conflict: s3://` + conn.Bucket + "/" + key
	testpeer.Eventually(t, 20*time.Second, "the tenant stops on the conflict", func() bool { return strings.Contains(logs.String(), stopped) })
	if got := getObject(t, api, conn.Bucket, key); !bytes.Equal(got, theirs) {
		t.Fatalf("the object at %s was replaced (%d bytes, want the other host's %d)", key, len(got), len(theirs))
	}
	if st := status(t, eng, path); st.State == replication.StateReplicating {
		t.Fatalf("after the conflict the tenant is %s again", st.State)
	}
}

// TestRetryOfLandedUploadSucceeds: an upload that reached S3 but whose
// answer was lost is sent again; S3 refuses it (the key exists), the
// object is the same bytes, and that is a success: the tenant replicates
// on, and restores hold every row.
func TestRetryOfLandedUploadSucceeds(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	direct := srv.Conn(t)
	var (
		mu       sync.Mutex
		armed    bool
		dropped  string
		refusals = map[string]int{}
	)
	conn, _ := proxied(t, srv, direct, s3proxy.Options{
		Fault: func(r s3proxy.Request) s3proxy.Fault {
			mu.Lock()
			defer mu.Unlock()
			if armed && dropped == "" && r.Method == "PUT" && strings.Contains(r.Key, "/0000/") && strings.HasSuffix(r.Key, ".ltx") {
				dropped = r.Key
				return s3proxy.Fault{DropResponse: true}
			}
			return s3proxy.Fault{}
		},
		Hook: func(r s3proxy.Request) {
			if r.Status == 412 {
				mu.Lock()
				refusals[r.Key]++
				mu.Unlock()
			}
		},
	})
	dir := t.TempDir()
	path := filepath.Join(dir, guid2+".db")
	writeAndClose(t, path, 0, 5)
	eng, _ := start(t, replication.Options{SleepAfter: -1}, replication.Source{Dirs: []string{dir}, DirConn: conn})
	waitSynced(t, eng, path, 20*time.Second)

	mu.Lock()
	armed = true
	mu.Unlock()
	writeAndClose(t, path, 5, 5)
	waitRestorable(t, direct, guid2, rows(t, path), 30*time.Second)
	waitSynced(t, eng, path, 20*time.Second)
	mu.Lock()
	key, n := dropped, refusals[dropped]
	mu.Unlock()
	if key == "" {
		t.Fatal("no upload's answer was dropped")
	}
	if n == 0 {
		t.Fatalf("the retry of %s was not conditional: S3 refused nothing", key)
	}
	writeAndClose(t, path, 10, 2)
	waitRestorable(t, direct, guid2, rows(t, path), 30*time.Second)
	if st := status(t, eng, path); st.State != replication.StateReplicating {
		t.Fatalf("after the retry the tenant is %s (%s)", st.State, st.Reason)
	}
	equalRows(t, "litestream restore", litestreamRestored(t, srv, direct, guid2), rows(t, path))
}

// bigTiming gives each request at least about 4.4 s: a 5 MiB part at the
// test's uplink fits with room for a loaded machine; a whole snapshot of
// tens of megabytes never would.
var bigTiming = hosts.Timing{BeatEvery: 250 * time.Millisecond, FenceAfter: 2500 * time.Millisecond, DeadAfter: 5 * time.Second, WriteMargin: 300 * time.Millisecond}

// TestBigSnapshotUploadsInParts: a tenant whose first snapshot takes
// several times DeadAfter to upload over a slow link replicates: each part
// has its own deadline, the status shows the snapshot's progress, and no
// multipart upload is left. The first attempt, cut halfway (its parts'
// connections dropped), is aborted, and the start does not give up: the
// tenant is open with its claim, and the next attempt uploads it. A change
// of 20 MB then goes up in parts too.
func TestBigSnapshotUploadsInParts(t *testing.T) {
	integration(t)
	// Restored after the engine closed (cleanups run last first). Two
	// parts at once get 2 MiB/s each: a 5 MiB part fits its deadline.
	t.Cleanup(replication.SetPartSize(5 << 20))
	t.Cleanup(replication.SetPartSlots(2))
	srv := s3test.Start(t)
	direct := srv.Conn(t)
	const uplink = 4 << 20 // bytes per second
	var (
		mu       sync.Mutex
		failID   string // the upload whose parts are cut: the first
		aborted  = map[string]bool{}
		partReqs int
	)
	conn, _ := proxied(t, srv, direct, s3proxy.Options{
		Uplink: uplink,
		Fault: func(r s3proxy.Request) s3proxy.Fault {
			q, _ := url.ParseQuery(r.Query)
			if r.Method != "PUT" || q.Get("partNumber") == "" {
				return s3proxy.Fault{}
			}
			mu.Lock()
			defer mu.Unlock()
			partReqs++
			if failID == "" && q.Get("partNumber") == "2" {
				failID = q.Get("uploadId")
			}
			if n, _ := strconv.Atoi(q.Get("partNumber")); failID != "" && q.Get("uploadId") == failID && n >= 2 {
				return s3proxy.Fault{Drop: true}
			}
			return s3proxy.Fault{}
		},
		Hook: func(r s3proxy.Request) {
			q, _ := url.ParseQuery(r.Query)
			if r.Method == "DELETE" && q.Get("uploadId") != "" && r.Status < 300 {
				mu.Lock()
				aborted[q.Get("uploadId")] = true
				mu.Unlock()
			}
		},
	})
	dir := t.TempDir()
	path := filepath.Join(dir, guid3+".db")
	db := testpeer.OpenDB(t, path)
	testpeer.InsertBlobs(t, db, 0, 60, 1<<20) // 63 MB: 15 s at the uplink, 3 DeadAfter
	db.Close()

	// The status during the first snapshot, as /status and ls show it.
	var (
		progress []replication.TenantStatus
		stop     = make(chan struct{})
		watched  = make(chan struct{})
	)
	var eng *replication.Engine
	var engMu sync.Mutex
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			engMu.Lock()
			e := eng
			engMu.Unlock()
			if e == nil {
				continue
			}
			if st, ok := e.Lookup(path); ok && st.UploadTotal > 0 {
				progress = append(progress, st)
			}
		}
	}()
	opt := replication.Options{SleepAfter: -1, Timing: bigTiming}
	started := time.Now()
	e, _ := startWith(t, opt, replication.Source{Dirs: []string{dir}, DirConn: conn}, func(e *replication.Engine) {
		engMu.Lock()
		eng = e
		engMu.Unlock()
	})
	waitSynced(t, e, path, time.Minute)
	took := time.Since(started)
	close(stop)
	<-watched
	t.Logf("first snapshot took %s (DeadAfter %s), %d part requests", took.Round(100*time.Millisecond), bigTiming.DeadAfter, partReqs)
	if len(progress) == 0 {
		t.Fatal("the status never showed the snapshot's progress")
	}
	midway := false
	for _, st := range progress {
		midway = midway || (st.UploadDone > 0 && st.UploadDone < st.UploadTotal)
	}
	if !midway {
		t.Fatalf("the status never showed a snapshot partly sent: %+v", progress)
	}
	last := progress[len(progress)-1]
	if !strings.Contains(last.Reason, "snapshotting") || !strings.Contains(last.Reason, " of ") || last.UploadDone > last.UploadTotal {
		t.Fatalf("progress status: %q (%d of %d bytes)", last.Reason, last.UploadDone, last.UploadTotal)
	}
	t.Logf("progress seen: %q", last.Reason)
	waitRestorable(t, direct, guid3, rows(t, path), time.Minute)

	// A change of 20 MB goes up in parts.
	db = testpeer.OpenDB(t, path)
	testpeer.InsertBlobs(t, db, 60, 20, 1<<20)
	db.Close()
	waitRestorable(t, direct, guid3, rows(t, path), 2*time.Minute)
	mu.Lock()
	id, wasAborted := failID, aborted[failID]
	mu.Unlock()
	if id == "" {
		t.Fatal("no multipart upload was cut")
	}
	if !wasAborted {
		t.Fatalf("the failed multipart upload %s was not aborted", id)
	}
	// Stopped, the engine has completed or aborted every upload it began
	// (compactions may be in flight until then).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if left := multipartUploads(t, srv.Client(t, direct), direct.Bucket); len(left) > 0 {
		t.Fatalf("multipart uploads left after a failed one: %v", left)
	}
	equalRows(t, "litestream restore", litestreamRestored(t, srv, direct, guid3), rows(t, path))
	// Files sent in parts carry their lineage like any other.
	for key, gen := range generations(t, srv.Client(t, direct), direct, guid3) {
		if gen != "1" {
			t.Fatalf("%s carries lineage generation %q, want 1", key, gen)
		}
	}
}
