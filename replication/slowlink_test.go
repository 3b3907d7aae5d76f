package replication_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/internal/s3proxy"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/logline"
	"github.com/litefleet/litefleet/replication"
	"github.com/litefleet/litefleet/s3conn"
)

// slowTiming scales the default timing down by about 2.5: a request gets
// 14–15 s (the default's 27–37 s). Over slowUplink, a 5 MiB part takes
// 10.5 s, about 0.7 of it, as a 5 MiB part over 200 kB/s takes of the
// default's deadline; a 12 MB single PUT (24 s) or an 8 MiB part (17 s)
// cannot fit, nor can two 5 MiB parts at once.
var slowTiming = hosts.Timing{BeatEvery: time.Second, FenceAfter: 8 * time.Second, DeadAfter: 16 * time.Second, WriteMargin: time.Second}

const slowUplink = 500_000 // bytes per second

// partRequests records the UploadPart requests a proxy forwarded.
type partRequests struct {
	mu    sync.Mutex
	spans [][2]time.Time // start, end of each that succeeded
	ids   map[string]bool
}

func (p *partRequests) hook(r s3proxy.Request) {
	q, _ := url.ParseQuery(r.Query)
	if r.Method != "PUT" || q.Get("partNumber") == "" || r.Status >= 300 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.spans = append(p.spans, [2]time.Time{r.Start, r.End})
	if p.ids == nil {
		p.ids = map[string]bool{}
	}
	p.ids[q.Get("uploadId")] = true
}

// overlap is the longest time two successful part requests were in
// flight together, as the proxy saw them (a request's end is when the
// proxy finished writing its answer, a moment after the client read it).
func (p *partRequests) overlap() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := slices.Clone(p.spans)
	slices.SortFunc(s, func(a, b [2]time.Time) int { return a[0].Compare(b[0]) })
	var most time.Duration
	for i := 1; i < len(s); i++ {
		for j := 0; j < i; j++ {
			end := s[i][1]
			if s[j][1].Before(end) {
				end = s[j][1]
			}
			most = max(most, end.Sub(s[i][0]))
		}
	}
	return most
}

func (p *partRequests) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.spans)
}

// TestSlowLinkSnapshotInFittedParts: a 12 MB tenant whose link is too slow
// for a single PUT, an 8 MiB part or two 5 MiB parts at once within the
// fencing deadline replicates: the upload measures the link, sends 5 MiB
// parts one at a time, each within its deadline, shows its progress, and
// the replica restores by litefleet and by litestream.
func TestSlowLinkSnapshotInFittedParts(t *testing.T) {
	integration(t)
	replication.ResetLink()
	t.Cleanup(replication.ResetLink)
	srv := s3test.Start(t)
	direct := srv.Conn(t)
	parts := &partRequests{}
	conn, _ := proxied(t, srv, direct, s3proxy.Options{Uplink: slowUplink, Hook: parts.hook})
	dir := t.TempDir()
	path := filepath.Join(dir, guid1+".db")
	db := testpeer.OpenDB(t, path)
	testpeer.InsertBlobs(t, db, 0, 12, 1_000_000) // 12 MB, incompressible
	db.Close()

	var (
		engMu    sync.Mutex
		eng      *replication.Engine
		progress []string
		states   []replication.State
		stop     = make(chan struct{})
		watched  = make(chan struct{})
	)
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			engMu.Lock()
			e := eng
			engMu.Unlock()
			if e == nil {
				continue
			}
			if st, ok := e.Lookup(path); ok && st.UploadTotal > 0 && st.UploadDone > 0 && st.UploadDone < st.UploadTotal {
				progress = append(progress, st.Reason)
				states = append(states, st.State)
			}
		}
	}()
	started := time.Now()
	e, logs := startWith(t, replication.Options{SleepAfter: -1, Timing: slowTiming}, replication.Source{Dirs: []string{dir}, DirConn: conn}, func(e *replication.Engine) {
		engMu.Lock()
		eng = e
		engMu.Unlock()
	})
	waitSynced(t, e, path, time.Minute)
	close(stop)
	<-watched
	t.Logf("first snapshot over %d kB/s took %s in %d parts; the link measured %.0f kB/s",
		slowUplink/1000, time.Since(started).Round(100*time.Millisecond), parts.count(), replication.LinkRate()/1000)
	if strings.Contains(logs.String(), "did not finish before") {
		t.Fatalf("a request missed its fencing deadline:\n%s", logs)
	}
	if n := parts.count(); n < 3 {
		t.Fatalf("%d parts: a 12 MB file over this link goes up in 5 MiB parts", n)
	}
	// Two 5 MiB parts at once would share the link for seconds.
	if d := parts.overlap(); d > time.Second {
		t.Fatalf("two parts were in flight together for %s: neither had the link it needs to fit its deadline", d)
	}
	if len(progress) == 0 || !strings.HasPrefix(progress[len(progress)-1], "snapshotting ") || !strings.Contains(progress[len(progress)-1], " MB of ") {
		t.Fatalf("the status never showed the snapshot's progress: %q", progress)
	}
	t.Logf("progress seen: %s: %q", states[len(states)-1], progress[len(progress)-1])
	want := rows(t, path)
	equalRows(t, "litefleet restore", restored(t, direct, guid1, 0), want)
	equalRows(t, "litestream restore", litestreamRestored(t, srv, direct, guid1), want)
	// (Aborts and sweeps are the two tests below: the compactions that
	// follow stream the 12 MB again, each for as long.)
}

// TestLinkTooSlowSaysSo: over a link on which even S3's smallest part
// cannot finish within the fencing deadline, the tenant's status says so,
// with the link's rate and what a part needs (the backoff that follows is
// TestSlowBackoff's), and the failed uploads are aborted.
func TestLinkTooSlowSaysSo(t *testing.T) {
	integration(t)
	replication.ResetLink()
	t.Cleanup(replication.ResetLink)
	srv := s3test.Start(t)
	direct := srv.Conn(t)
	conn, _ := proxied(t, srv, direct, s3proxy.Options{Uplink: slowUplink})
	dir := t.TempDir()
	path := filepath.Join(dir, guid2+".db")
	db := testpeer.OpenDB(t, path)
	testpeer.InsertBlobs(t, db, 0, 8, 1_000_000)
	db.Close()

	// A request gets 4.4 s: 2.2 MB at this link, less than a part.
	eng, logs := start(t, replication.Options{SleepAfter: -1, Timing: bigTiming}, replication.Source{Dirs: []string{dir}, DirConn: conn})
	const said = "this tenant cannot replicate until the uplink is faster"
	testpeer.Eventually(t, 45*time.Second, "the status to say the link is too slow", func() bool {
		st, ok := eng.Lookup(path)
		return ok && strings.Contains(st.Reason, said)
	})
	st := status(t, eng, path)
	t.Logf("status: %s: %s", st.State, st.Reason)
	if !strings.Contains(st.Reason, "the link to S3 carries") || !strings.Contains(st.Reason, "needs") {
		t.Fatalf("the status does not say what the link carries and needs: %q", st.Reason)
	}
	if !strings.Contains(logs.String(), "uplink too slow for the fencing deadline") {
		t.Fatalf("no warning in the log:\n%s", logs)
	}
	// Every failed upload was aborted. (What S3 lists afterwards is not
	// asserted: a part cut at its deadline may still land in the server
	// and revive an aborted upload; the holder's later sweeps catch those,
	// TestKilledMidUploadLeavesNoMultipart the one at a start.)
	if !strings.Contains(logs.String(), "failed multipart upload aborted") || strings.Contains(logs.String(), "failed multipart upload not aborted") {
		t.Fatalf("the failed uploads were not all aborted:\n%s", logs)
	}
}

// childEnv names the replicator a test runs in a process of its own, so
// that it can be SIGKILLed mid-upload (see replicatorMain).
const childEnv = "LITEFLEET_TEST_REPLICATOR"

type childSpec struct {
	Dir         string
	Conn        s3conn.Conn
	Key, Secret string
	Host        string
	Timing      hosts.Timing
	// SavePagesEvery: the engine's default when zero.
	SavePagesEvery time.Duration
}

// replicatorMain runs the engine when this process was started as a
// child replicator; call it first in TestMain. It logs to stderr and
// replicates until killed.
func replicatorMain() {
	spec := os.Getenv(childEnv)
	if spec == "" {
		return
	}
	var c childSpec
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	c.Conn.AccessKeyID, c.Conn.SecretAccessKey = c.Key, c.Secret
	log := slog.New(logline.NewLineHandler(os.Stderr, slog.LevelDebug))
	eng, err := replication.New(replication.Options{SleepAfter: -1, Timing: c.Timing, Host: c.Host, Logger: log,
		Sweep: 300 * time.Millisecond, Retry: 200 * time.Millisecond, SavePagesEvery: c.SavePagesEvery}, replication.Source{Dirs: []string{c.Dir}, DirConn: c.Conn})
	if err == nil {
		err = eng.Start(context.Background())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "start:", err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := eng.Close(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "close:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// startReplicator runs a replicator in a child process; stop ends it
// cleanly (SIGTERM) and returns its exit code.
func startReplicator(t *testing.T, c childSpec) (cmd *exec.Cmd, out *testpeer.Buffer, stop func() int) {
	t.Helper()
	spec, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	out = &testpeer.Buffer{}
	cmd = exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	cmd.Stderr, cmd.Stdout = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
		if t.Failed() {
			t.Logf("replicator %d:\n%s", cmd.Process.Pid, out)
		}
	})
	stop = func() int {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
			return cmd.ProcessState.ExitCode()
		case <-time.After(90 * time.Second):
			t.Fatalf("replicator %d did not stop within 90 s of SIGTERM", cmd.Process.Pid)
			return -1
		}
	}
	return cmd, out, stop
}

// uploadIDs lists the bucket's multipart uploads in progress, by ID.
func uploadIDs(t *testing.T, api *s3.Client, bucket string) map[string]string {
	t.Helper()
	out, err := api.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("list multipart uploads: %v", err)
	}
	ids := map[string]string{}
	for _, u := range out.Uploads {
		ids[aws.ToString(u.UploadId)] = aws.ToString(u.Key)
	}
	return ids
}

// TestKilledMidUploadLeavesNoMultipart: a replicator SIGKILLed in the
// middle of a multipart snapshot over a slow link leaves an upload with
// parts in the bucket; the next one started under the same host name
// aborts it (it holds the tenant's claim, and the upload is not its own),
// uploads the snapshot, and no multipart upload is left.
func TestKilledMidUploadLeavesNoMultipart(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	direct := srv.Conn(t)
	parts := &partRequests{}
	conn, proxy := proxied(t, srv, direct, s3proxy.Options{Uplink: 2 * slowUplink, Hook: parts.hook})
	dir := t.TempDir()
	path := filepath.Join(dir, guid3+".db")
	db := testpeer.OpenDB(t, path)
	testpeer.InsertBlobs(t, db, 0, 12, 1_000_000)
	db.Close()

	spec := childSpec{Dir: dir, Conn: conn, Key: conn.AccessKeyID, Secret: conn.SecretAccessKey, Host: "h-kill", Timing: slowTiming}
	first, _, _ := startReplicator(t, spec)
	testpeer.Eventually(t, 40*time.Second, "a first part to land", func() bool { return parts.count() > 0 })
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The part the killed process was sending may still land from its
	// socket buffers through the slow proxy (and revive the upload, which
	// the holder's next sweeps catch); closed, the proxy delivers nothing
	// more, so that the test knows what was abandoned.
	_ = proxy.Close()
	api := srv.Client(t, direct)
	abandoned := uploadIDs(t, api, direct.Bucket)
	if len(abandoned) == 0 {
		t.Fatal("the killed replicator left no multipart upload: nothing to test")
	}
	t.Logf("killed mid-upload: %d multipart upload(s) left: %v", len(abandoned), abandoned)

	spec.Conn = direct
	_, out, stop := startReplicator(t, spec)
	var (
		still   map[string]string
		inS3    bool
		waitEnd = time.Now().Add(50 * time.Second)
	)
	for {
		now := uploadIDs(t, api, direct.Bucket)
		still = map[string]string{}
		for id, key := range abandoned {
			if _, ok := now[id]; ok {
				still[id] = key
			}
		}
		inS3 = tenantInS3(api, direct, guid3)
		if len(still) == 0 && inS3 {
			break
		}
		if time.Now().After(waitEnd) {
			t.Fatalf("after 50 s: abandoned uploads still listed %v, snapshot in S3 %v", still, inS3)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "abandoned multipart upload aborted") {
		t.Fatalf("the restarted replicator did not say it aborted the abandoned upload:\n%s", out)
	}
	want := rows(t, path)
	waitRestorable(t, direct, guid3, want, 30*time.Second)
	equalRows(t, "litestream restore", litestreamRestored(t, srv, direct, guid3), want)
	// Stopped cleanly, the replicator completed or aborted its own uploads
	// (a compaction may be in flight): nothing is left.
	if code := stop(); code != 0 {
		t.Fatalf("the replicator exited with %d", code)
	}
	if left := uploadIDs(t, api, direct.Bucket); len(left) > 0 {
		t.Fatalf("multipart uploads left after the restart: %v", left)
	}
}

// tenantInS3 reports whether the tenant's replica holds an LTX file.
func tenantInS3(api *s3.Client, conn s3conn.Conn, tenant string) bool {
	out, err := api.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(conn.Bucket), Prefix: aws.String(conn.TenantPath(tenant) + "/0000/")})
	return err == nil && len(out.Contents) > 0
}
