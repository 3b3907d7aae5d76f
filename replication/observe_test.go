package replication_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/replication"
)

// recorder is an Observer that keeps what it is told.
type recorder struct {
	mu            sync.Mutex
	syncs, commit []time.Duration
}

func (r *recorder) ObserveSync(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.syncs = append(r.syncs, d)
}

func (r *recorder) ObserveCommitToS3(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.commit = append(r.commit, d)
}

func (r *recorder) counts() (syncs, commits int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.syncs), len(r.commit)
}

// Each change uploaded is one sync and one commit-to-S3 latency for the
// Observer, and the tenant's status carries its WAL's size as stat gives
// it.
func TestObserverAndWALSize(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	path := filepath.Join(dir, guid1+".db")
	db := testpeer.OpenDB(t, path)
	testpeer.InsertRows(t, db, 0, 10)

	rec := &recorder{}
	eng, _ := start(t, replication.Options{Observer: rec, SleepAfter: -1}, replication.Source{Dirs: []string{dir}, DirConn: conn})
	waitSynced(t, eng, path, 20*time.Second)
	syncs0, commits0 := rec.counts()
	if syncs0 == 0 || commits0 == 0 {
		t.Fatalf("after the first sync: %d syncs, %d latencies observed, want some of each", syncs0, commits0)
	}

	before := status(t, eng, path).ReplicatedTXID
	testpeer.InsertRows(t, db, 10, 5)
	deadline := time.Now().Add(20 * time.Second)
	for status(t, eng, path).ReplicatedTXID <= before {
		if time.Now().After(deadline) {
			t.Fatalf("the change did not reach S3: %+v", status(t, eng, path))
		}
		time.Sleep(50 * time.Millisecond)
	}
	syncs, commits := rec.counts()
	if syncs <= syncs0 || commits <= commits0 {
		t.Fatalf("a change uploaded: %d→%d syncs, %d→%d latencies observed, want more of each", syncs0, syncs, commits0, commits)
	}
	rec.mu.Lock()
	for _, d := range append(rec.syncs, rec.commit...) {
		if d < 0 {
			t.Errorf("a negative duration observed: %s", d)
		}
	}
	rec.mu.Unlock()

	// The WAL's size, as the sweep's stat sees it (the file is open and
	// never checkpointed here: it only grows).
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		st := status(t, eng, path)
		if st.WALBytes > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("WAL bytes %d, want the -wal file's size (%d now)", st.WALBytes, fi.Size())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
