// Command verify benchmarks `litefleet verify -all` (issue 19): N tenants
// of about 2 MB each on versitygw, each a snapshot and a few level-0
// files (the shape of a replicated tenant), with a live host's record
// giving each tenant's checksum, verified through a request-counting
// proxy (internal/s3proxy). It prints the wall time, tenants per second,
// the verdicts, and the S3 requests per tenant by kind.
//
// The replicas are written straight to S3 from one real SQLite database
// (writing 10,000 tenants through `litefleet replicate` would take longer
// than verifying them); verify itself runs in this process, as the
// command does, against the proxy.
//
//	scripts/with-s3.sh go run ./bench/verify -tenants 1000
//	scripts/with-s3.sh go run ./bench/verify -tenants 10000 -parallel 8
package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"
	_ "modernc.org/sqlite"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/internal/s3proxy"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/verify"
)

const pageSize = 4096

func tenantName(i int) string { return fmt.Sprintf("7e71f000-0000-4000-8000-%012x", i) }

func main() {
	var (
		tenants  = flag.Int("tenants", 1000, "number of tenants")
		sizeKB   = flag.Int("tenant-kb", 2000, "size of each tenant's database, in KB")
		l0       = flag.Int("l0", 4, "level-0 files after each tenant's snapshot")
		parallel = flag.Int("parallel", verify.DefaultParallel, "verify -parallel")
		upload   = flag.Int("upload-parallel", 16, "uploads at once while writing the replicas")
	)
	flag.Parse()
	if err := run(*tenants, *sizeKB, *l0, *parallel, *upload); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(tenants, sizeKB, l0, parallel, uploadParallel int) error {
	if _, err := s3conn.AdoptCABundle(); err != nil {
		return err
	}
	endpoint := os.Getenv(s3test.EnvEndpoint)
	if endpoint == "" {
		return errors.New("no S3 server: run this through scripts/with-s3.sh")
	}
	ctx := context.Background()
	conn := s3conn.Conn{Bucket: fmt.Sprintf("bench-verify-%d", time.Now().Unix()), Prefix: s3conn.DefaultPrefix, Endpoint: endpoint,
		AccessKeyID: os.Getenv(s3test.EnvAccessKey), SecretAccessKey: os.Getenv(s3test.EnvSecretKey), ForcePathStyle: true}
	client, err := s3conn.NewClient(ctx, conn)
	if err != nil {
		return err
	}
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(conn.Bucket)}); err != nil {
		return fmt.Errorf("create bucket: %w", err)
	}

	// One history, written by SQLite: a snapshot and l0 small changes.
	work, err := os.MkdirTemp("", "litefleet-bench-verify-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	states, err := history(filepath.Join(work, "src.db"), sizeKB, l0)
	if err != nil {
		return err
	}
	files := [][]byte{encode(nil, states[0], 1, 1)}
	for i := 1; i < len(states); i++ {
		files = append(files, encode(states[i-1], states[i], i+1, i+1))
	}
	last := len(states)
	var replicaBytes int64
	for _, f := range files {
		replicaBytes += int64(len(f))
	}

	start := time.Now()
	var done atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(uploadParallel)
	for i := range tenants {
		g.Go(func() error {
			for j, f := range files {
				key := fmt.Sprintf("%s/0000/%s", conn.TenantPath(tenantName(i)), ltx.FormatFilename(ltx.TXID(j+1), ltx.TXID(j+1)))
				if _, err := client.PutObject(gctx, &s3.PutObjectInput{Bucket: aws.String(conn.Bucket), Key: aws.String(key), Body: bytes.NewReader(f)}); err != nil {
					return fmt.Errorf("put %s: %w", key, err)
				}
			}
			if n := done.Add(1); n%1000 == 0 {
				fmt.Fprintf(os.Stderr, "written %d/%d tenants\n", n, tenants)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// A live host that records every tenant with the checksum at the last TXID.
	rec := &hosts.Record{Host: "bench-1", At: time.Now().UTC()}
	sum := checksum(states[last-1])
	for i := range tenants {
		rec.Tenants = append(rec.Tenants, hosts.TenantRecord{Name: tenantName(i), State: "sleeping", Local: uint64(last), Replicated: uint64(last), Checksum: sum})
	}
	body, err := hosts.EncodeRecord(rec)
	if err != nil {
		return err
	}
	for key, b := range map[string][]byte{layout.HeartbeatKey("bench-1"): []byte(`{"host":"bench-1","seq":1}`), layout.RecordKey("bench-1"): body} {
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(conn.Bucket), Key: aws.String(key), Body: bytes.NewReader(b)}); err != nil {
			return err
		}
	}
	fmt.Printf("replicas: %d tenants, database %.2f MB, %d LTX files of %.2f MB per tenant, written in %s\n",
		tenants, float64(len(states[last-1]))/1e6, len(files), float64(replicaBytes)/1e6, time.Since(start).Round(time.Millisecond))

	proxy, err := s3proxy.Start(s3proxy.Options{Target: endpoint})
	if err != nil {
		return err
	}
	defer proxy.Close()
	pconn := conn
	pconn.Endpoint = proxy.URL()
	pclient, err := s3conn.NewClient(ctx, pconn)
	if err != nil {
		return err
	}
	before := proxy.Snapshot()
	start = time.Now()
	sumv, err := verify.Run(ctx, pclient, verify.RunOptions{Options: verify.Options{Conn: pconn}, All: true, Parallel: parallel},
		func(r *verify.Report) {
			if r.Verdict != verify.Verified {
				fmt.Fprintf(os.Stderr, "%s: %s\n", r.Tenant, r.Line())
			}
		})
	wall := time.Since(start)
	if err != nil {
		return err
	}
	reqs := proxy.Snapshot().Sub(before)

	fmt.Printf("verify -all -parallel %d of %d tenants (%s, %d CPUs): %s, %.1f tenants/s, %.1f MB/s of LTX files read\n",
		parallel, tenants, runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU(), wall.Round(time.Millisecond),
		float64(tenants)/wall.Seconds(), float64(sumv.Bytes)/1e6/wall.Seconds())
	var verdicts []string
	for v, n := range sumv.Verdicts {
		verdicts = append(verdicts, fmt.Sprintf("%s %d", v, n))
	}
	sort.Strings(verdicts)
	fmt.Printf("  verdicts: %s\n", strings.Join(verdicts, ", "))
	all := reqs.Data.Total() + reqs.Control.Total()
	fmt.Printf("  S3 requests: %d, %.2f per tenant:", all, float64(all)/float64(max(tenants, 1)))
	for k := range s3proxy.NumKinds {
		if n := reqs.Data[k] + reqs.Control[k]; n > 0 {
			fmt.Printf(" %s %.2f", k, float64(n)/float64(max(tenants, 1)))
		}
	}
	fmt.Println()
	target := 10 * time.Minute * time.Duration(tenants) / 10000
	fmt.Printf("  target: 10,000 tenants in 10 min, %s for %d; projected for 10,000 at this rate: %s\n",
		target.Round(time.Second), tenants, (wall * 10000 / time.Duration(max(tenants, 1))).Round(time.Second))
	if sumv.Verdicts[verify.Verified] != tenants {
		return fmt.Errorf("%d of %d tenants verified", sumv.Verdicts[verify.Verified], tenants)
	}
	return nil
}

// history writes a database of about sizeKB, then l0 transactions each
// changing a row, and returns the file's bytes after each (rollback
// journal: the file alone is the state).
func history(path string, sizeKB, l0 int) ([][]byte, error) {
	var states [][]byte
	for i := 0; i <= l0; i++ {
		db, err := sql.Open("sqlite", path)
		if err != nil {
			return nil, err
		}
		stmts := []string{fmt.Sprintf("PRAGMA page_size=%d", pageSize), "PRAGMA journal_mode=DELETE"}
		if i == 0 {
			stmts = append(stmts, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)",
				fmt.Sprintf("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < %d) INSERT INTO t SELECT i, randomblob(1000) FROM n", sizeKB))
		} else {
			stmts = append(stmts, fmt.Sprintf("UPDATE t SET v = randomblob(1000) WHERE id = %d", i*7))
		}
		for _, s := range stmts {
			if _, err := db.Exec(s); err != nil {
				db.Close()
				return nil, fmt.Errorf("%s: %w", s, err)
			}
		}
		if err := db.Close(); err != nil {
			return nil, err
		}
		b, err := os.ReadFile(path) // this program's own file, closed
		if err != nil {
			return nil, err
		}
		states = append(states, b)
	}
	return states, nil
}

// encode is the LTX file of the change from prev to cur (a snapshot when
// prev is nil), as Litestream v0.5.18 writes it: without checksums.
func encode(prev, cur []byte, minTXID, maxTXID int) []byte {
	var buf bytes.Buffer
	enc, err := ltx.NewEncoder(&buf)
	if err != nil {
		panic(err)
	}
	commit := uint32(len(cur) / pageSize)
	if err := enc.EncodeHeader(ltx.Header{Version: ltx.Version, Flags: ltx.HeaderFlagNoChecksum, PageSize: pageSize, Commit: commit,
		MinTXID: ltx.TXID(minTXID), MaxTXID: ltx.TXID(maxTXID), Timestamp: time.Now().UnixMilli()}); err != nil {
		panic(err)
	}
	lock := ltx.LockPgno(pageSize)
	for pgno := uint32(1); pgno <= commit; pgno++ {
		page := cur[(pgno-1)*pageSize : pgno*pageSize]
		if off := int(pgno-1) * pageSize; pgno == lock || (prev != nil && off+pageSize <= len(prev) && bytes.Equal(prev[off:off+pageSize], page)) {
			continue
		}
		if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, page); err != nil {
			panic(err)
		}
	}
	if err := enc.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// checksum is the database's LTX checksum, as a host records it.
func checksum(db []byte) string {
	var sum ltx.Checksum
	lock := ltx.LockPgno(pageSize)
	for pgno := uint32(1); int(pgno)*pageSize <= len(db); pgno++ {
		if pgno != lock {
			sum ^= ltx.ChecksumPage(pgno, db[(pgno-1)*pageSize:pgno*pageSize])
		}
	}
	return (sum | ltx.ChecksumFlag).String()
}
