// Command bigupload measures what replicating one big tenant costs in
// memory: it creates a database of -mb megabytes (random, incompressible
// rows), replicates it with the engine in this process until its first
// snapshot is in S3 and Litestream's level-1 compaction has rewritten it
// (the compaction streams the whole database through the replica client),
// and prints the process's peak RSS (VmHWM) over that time, the time each
// took, the parts and the S3 requests counted at a proxy in front of the
// server (which -uplink also throttles: a big tenant over a slow link).
// The peak is reset after the database is made, so that only replication
// counts.
//
// It needs an S3 server: run it through scripts/with-s3.sh.
//
//	scripts/with-s3.sh go run ./bench/bigupload -mb 1024
//	scripts/with-s3.sh go run ./bench/bigupload -mb 1200 -uplink 20
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	_ "modernc.org/sqlite"

	"github.com/litefleet/litefleet/internal/s3proxy"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/replication"
	"github.com/litefleet/litefleet/s3conn"
)

const tenant = "b16b16b1-0000-4000-8000-0000000b1600"

func main() {
	var (
		mb      = flag.Int("mb", 1024, "size of the database, in MB")
		uplink  = flag.Float64("uplink", 0, "limit uploads to this many MB/s through a proxy (0: no limit)")
		work    = flag.String("dir", "", "working folder (default: a new temporary folder, removed at the end)")
		timeout = flag.Duration("timeout", 30*time.Minute, "give up after this long")
		memprof = flag.String("memprofile", "", "write a heap profile (allocations included) here at the end")
	)
	flag.Parse()
	if *memprof != "" {
		runtime.MemProfileRate = 64 << 10
		defer func() {
			if f, err := os.Create(*memprof); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	if err := run(*mb, *uplink, *work, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "bigupload:", err)
		os.Exit(1)
	}
}

func run(mb int, uplink float64, work string, timeout time.Duration) error {
	ep := os.Getenv(s3test.EnvEndpoint)
	if ep == "" {
		return errors.New("no S3 server: run through scripts/with-s3.sh")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if work == "" {
		d, err := os.MkdirTemp("", "litefleet-bigupload-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		work = d
	}
	path := filepath.Join(work, tenant+".db")
	fmt.Printf("making a %d MB database at %s\n", mb, path)
	if err := makeDB(path, mb); err != nil {
		return err
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}

	conn := s3conn.Conn{Bucket: fmt.Sprintf("bigupload-%d", time.Now().UnixNano()), Endpoint: ep,
		AccessKeyID: os.Getenv(s3test.EnvAccessKey), SecretAccessKey: os.Getenv(s3test.EnvSecretKey), Prefix: s3conn.DefaultPrefix}
	api, err := s3conn.NewClient(ctx, conn)
	if err != nil {
		return err
	}
	if _, err := api.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(conn.Bucket)}); err != nil {
		return fmt.Errorf("create bucket: %w", err)
	}
	// Every request goes through a counting proxy (which also limits the
	// uplink): parts and requests are counted, not estimated.
	var parts, uploads atomic.Int64
	proxy, err := s3proxy.Start(s3proxy.Options{Target: ep, Uplink: int64(uplink * 1e6), Hook: func(r s3proxy.Request) {
		q, _ := url.ParseQuery(r.Query)
		switch {
		case r.Method == "PUT" && q.Has("partNumber") && r.Status < 300:
			parts.Add(1)
		case r.Method == "POST" && q.Has("uploads") && r.Status < 300:
			uploads.Add(1)
		}
	}})
	if err != nil {
		return err
	}
	defer proxy.Close()
	conn.Endpoint = proxy.URL()

	// Only replication counts: the peak is reset once the database is made.
	runtime.GC()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return fmt.Errorf("reset the peak RSS: %w", err)
	}
	base := procStatus("VmRSS")
	var peakHeap atomic.Uint64
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peakHeap.Load() {
				peakHeap.Store(m.HeapInuse)
			}
		}
	}()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	eng, err := replication.New(replication.Options{SleepAfter: -1, Logger: logger, LibLogger: logger}, replication.Source{Dirs: []string{work}, DirConn: conn})
	if err != nil {
		return err
	}
	start := time.Now()
	if err := eng.Start(ctx); err != nil {
		return err
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
		defer ccancel()
		_ = eng.Close(cctx)
	}()
	for {
		s, ok := eng.Lookup(path)
		if ok && s.LocalTXID > 0 && s.ReplicatedTXID >= s.LocalTXID {
			break
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return fmt.Errorf("first snapshot not up: %w", err)
		}
	}
	snapshot := time.Since(start)
	reqs := proxy.Snapshot().Data
	fmt.Printf("first snapshot (level 0) up after %s (%.1f MB/s): %d multipart upload(s), %d parts; S3 requests %d (PUT %d, LIST %d, GET %d, HEAD %d, DELETE %d); link measured at %.1f MB/s\n",
		snapshot.Round(100*time.Millisecond), float64(st.Size())/1e6/snapshot.Seconds(), uploads.Load(), parts.Load(),
		reqs.Total(), reqs[s3proxy.Put], reqs[s3proxy.List], reqs[s3proxy.Get], reqs[s3proxy.Head], reqs[s3proxy.Delete], replication.LinkRate()/1e6)
	// Litestream's level-1 compaction (every 30 s) streams the snapshot
	// again, through a pipe: the case that must not be buffered whole.
	for {
		n, err := levelBytes(ctx, api, conn, 1)
		if err == nil && n >= st.Size()/2 {
			break
		}
		if err := sleep(ctx, time.Second); err != nil {
			return fmt.Errorf("level-1 compaction not up: %w", err)
		}
	}
	reqs = proxy.Snapshot().Data
	fmt.Printf("level-1 compaction up after %s: %d multipart upload(s), %d parts in all; S3 requests %d (PUT %d, LIST %d, GET %d, HEAD %d, DELETE %d)\n",
		time.Since(start).Round(100*time.Millisecond), uploads.Load(), parts.Load(),
		reqs.Total(), reqs[s3proxy.Put], reqs[s3proxy.List], reqs[s3proxy.Get], reqs[s3proxy.Head], reqs[s3proxy.Delete])
	hwm := procStatus("VmHWM")
	fmt.Printf("database %s; RSS before replication %s; peak RSS while replicating (VmHWM) %s; peak Go heap in use %s\n",
		mib(st.Size()), mib(base), mib(hwm), mib(int64(peakHeap.Load())))
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// makeDB writes mb megabytes of random rows, 1 MiB each.
func makeDB(path string, mb int) error {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(wal)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, val BLOB NOT NULL)`); err != nil {
		return err
	}
	val := make([]byte, 1<<20)
	for i := 0; i < mb; i += 64 {
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		for j := i; j < min(i+64, mb); j++ {
			_, _ = rand.Read(val)
			if _, err := tx.Exec(`INSERT INTO t (id, val) VALUES (?, ?)`, j, val); err != nil {
				_ = tx.Rollback()
				return err
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	_, err = db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	return err
}

// levelBytes sums the sizes of the tenant's files of one level.
func levelBytes(ctx context.Context, api *s3.Client, conn s3conn.Conn, level int) (int64, error) {
	out, err := api.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(conn.Bucket), Prefix: aws.String(fmt.Sprintf("%s/%04x/", conn.TenantPath(tenant), level))})
	if err != nil {
		return 0, err
	}
	var n int64
	for _, o := range out.Contents {
		n += aws.ToInt64(o.Size)
	}
	return n, nil
}

// procStatus reads one of /proc/self/status's kB fields, in bytes.
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n << 10
		}
	}
	return 0
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }
