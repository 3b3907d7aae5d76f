// Command lsbench measures `litefleet ls` on a large fleet. With -hosts H
// it runs H real `litefleet replicate -host hN` processes over N real
// databases, through a request-counting proxy, and times `ls -json` over
// the bucket alone (positions from the host records) against `ls -json
// -scan`, with their S3 requests and those of a terminal UI refresh (see
// hosts.go). Without, it seeds N tenant
// prefixes (a few LTX objects each) in a real S3 server and N local
// databases with Litestream state, then times `litefleet ls` over both
// (after one untimed run, as an operator's folder and bucket are warm) and
// reports wall time and peak RSS; every answer is checked. Run it through
// `make bench-ls`, which starts the S3 server (scripts/with-s3.sh).
//
// Tenant names are GUIDs numbered from 0 (00000000-0000-4000-8000-...), so
// that all 10,000 share their first four characters: a listing cut into
// ranges by first character would find one range, not sixteen.
//
// Seeding 10,000 tenants takes a minute or two. To measure again and again,
// keep a server with a fixed data folder and seed it once:
//
//	.tools/bin/versitygw --access k --secret s --port 127.0.0.1:7071 --quiet posix /var/tmp/lsbench-s3 &
//	export LITEFLEET_TEST_S3_ENDPOINT=http://127.0.0.1:7071 LITEFLEET_TEST_S3_ACCESS_KEY=k LITEFLEET_TEST_S3_SECRET_KEY=s
//	go run ./bench/lsbench -dir /var/tmp/lsbench-local -seed=auto   # seeds only what is missing
//	go run ./bench/lsbench -dir /var/tmp/lsbench-local -seed=false -split -runs 5
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"

	"github.com/litefleet/litefleet/s3conn"
)

func main() {
	if os.Getenv(measureEnv) != "" {
		os.Exit(measure(os.Args[1:]))
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "lsbench:", err)
		os.Exit(1)
	}
}

func run() error {
	n := flag.Int("tenants", 10000, "tenants to seed, in S3 and on disk")
	objects := flag.Int("objects", 4, "LTX objects per tenant (levels 0, 1, 9)")
	runs := flag.Int("runs", 3, "timed runs of ls")
	bin := flag.String("litefleet", "bin/litefleet", "litefleet binary")
	dir := flag.String("dir", filepath.Join(os.TempDir(), "litefleet-lsbench"), "folder for the local databases (recreated when seeding)")
	seed := flag.String("seed", "true", "true: seed S3 and -dir from scratch; false: reuse what an earlier run seeded; auto: seed only a side that is not there yet")
	split := flag.Bool("split", false, "also time the S3 side alone (no -dir) and the local side alone (no -bucket)")
	nHosts := flag.Int("hosts", 0, "instead: replicate -tenants real databases with this many `litefleet replicate -host hN` processes, then time ls over the bucket alone (host records) and with -scan")
	flag.Parse()
	if *seed != "true" && *seed != "false" && *seed != "auto" {
		return fmt.Errorf("-seed %q: use true, false or auto", *seed)
	}
	if *runs < 1 {
		return fmt.Errorf("-runs %d: at least 1", *runs)
	}

	endpoint := os.Getenv("LITEFLEET_TEST_S3_ENDPOINT")
	if endpoint == "" {
		return errors.New("no S3 server: run through scripts/with-s3.sh (make bench-ls)")
	}
	if *nHosts > 0 {
		if *n%*nHosts != 0 {
			return fmt.Errorf("-tenants %d is not a multiple of -hosts %d", *n, *nHosts)
		}
		return runHosts(*bin, endpoint, os.Getenv("LITEFLEET_TEST_S3_ACCESS_KEY"), os.Getenv("LITEFLEET_TEST_S3_SECRET_KEY"),
			filepath.Join(os.TempDir(), "litefleet-lsbench-hosts"), *n, *nHosts, *runs)
	}
	conn := s3conn.Conn{
		Bucket: "lsbench", Prefix: "databases", Endpoint: endpoint,
		AccessKeyID: os.Getenv("LITEFLEET_TEST_S3_ACCESS_KEY"), SecretAccessKey: os.Getenv("LITEFLEET_TEST_S3_SECRET_KEY"),
	}
	ctx := context.Background()
	client, err := s3conn.NewClient(ctx, conn)
	if err != nil {
		return err
	}
	seedS3, seedDisk := *seed == "true", *seed == "true"
	if *seed == "auto" {
		seedS3 = !remoteSeeded(ctx, client, conn, *n, *objects)
		seedDisk = !localSeeded(*dir, *n)
	}
	if seedS3 {
		_, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(conn.Bucket)})
		var owned *types.BucketAlreadyOwnedByYou
		if err != nil && !(*seed == "auto" && errors.As(err, &owned)) {
			return fmt.Errorf("create bucket: %w", err)
		}
		start := time.Now()
		if err := seedRemote(ctx, client, conn, *n, *objects); err != nil {
			return err
		}
		fmt.Printf("seeded %d tenant prefixes x %d LTX objects in %s\n", *n, *objects, time.Since(start).Round(time.Millisecond))
	} else {
		fmt.Printf("reusing the %d tenant prefixes in s3://%s at %s\n", *n, conn.Bucket, endpoint)
	}
	if seedDisk {
		start := time.Now()
		if err := seedLocal(*dir, *n); err != nil {
			return err
		}
		fmt.Printf("seeded %d local databases with Litestream state in %s\n", *n, time.Since(start).Round(time.Millisecond))
	} else {
		fmt.Printf("reusing the %d local databases in %s\n", *n, *dir)
	}

	env := append(os.Environ(), "AWS_ACCESS_KEY_ID="+conn.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+conn.SecretAccessKey)
	s3Args := []string{"-bucket", conn.Bucket, "-endpoint", endpoint}
	dirArgs := []string{"-dir", *dir}
	cases := []benchCase{{
		what: "local + S3, with lag", args: append(append(dirArgs[:len(dirArgs):len(dirArgs)], s3Args...), "-json", "-no-cache"),
		want: map[string]int{"in sync": *n},
	}}
	if *split {
		cases = append(cases,
			benchCase{what: "S3 side alone", args: append(s3Args[:len(s3Args):len(s3Args)], "-json", "-no-cache"), want: map[string]int{"remote only": *n}},
			benchCase{what: "local side alone", args: append(dirArgs[:len(dirArgs):len(dirArgs)], "-json"), want: map[string]int{"not replicating": *n}},
		)
	}
	if seedS3 || seedDisk {
		// What was just written is still being written back to disk, which
		// would slow the first runs; an operator's fleet has long been.
		syscall.Sync()
	}
	for _, c := range cases {
		if err := c.run(*bin, env, *runs, *n); err != nil {
			return err
		}
	}
	return nil
}

// benchCase is one `litefleet ls` command line, timed over several runs.
type benchCase struct {
	what string
	args []string
	want map[string]int // tenants per status the answer must hold
}

func (c benchCase) run(bin string, env []string, runs, n int) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := append([]string{bin, "ls"}, c.args...)
	var walls []time.Duration
	var rss []int64
	// Run -1 is a warm-up, not timed: it fills the page cache as the
	// operator's previous `ls` would have.
	// The answer goes to a file, not through a pipe this process would
	// copy from while the command runs, on the cores it is measured on.
	outFile, err := os.CreateTemp("", "lsbench-out-")
	if err != nil {
		return err
	}
	defer os.Remove(outFile.Name())
	defer outFile.Close()
	for i := -1; i < runs; i++ {
		if err := outFile.Truncate(0); err != nil {
			return err
		}
		if _, err := outFile.Seek(0, 0); err != nil {
			return err
		}
		cmd := exec.Command(self, args...)
		cmd.Env = append(env, measureEnv+"=1")
		var errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = outFile, &errb
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("litefleet %s: %w: %s", strings.Join(args[1:], " "), err, errb.String())
		}
		out, err := os.ReadFile(outFile.Name())
		if err != nil {
			return err
		}
		// The last line of stderr is the measurement.
		text := strings.TrimRight(errb.String(), "\n")
		var wall, cpu time.Duration
		var maxRSS int64
		if _, err := fmt.Sscanf(text[strings.LastIndexByte(text, '\n')+1:], measureFormat, &wall, &maxRSS, &cpu); err != nil {
			return fmt.Errorf("litefleet %s: no measurement in %q: %w", strings.Join(args[1:], " "), text, err)
		}
		if i >= 0 {
			walls = append(walls, wall)
			rss = append(rss, maxRSS)
		}
		if err := checkAnswer(out, n, c.want); err != nil {
			return fmt.Errorf("%s, run %d: %w: the benchmark must measure a full, correct answer", c.what, i+1, err)
		}
	}
	sort.Slice(walls, func(i, j int) bool { return walls[i] < walls[j] })
	sort.Slice(rss, func(i, j int) bool { return rss[i] < rss[j] })
	fmt.Printf("litefleet ls, %d tenants (%s), %d runs: wall median %s (min %s, max %s); peak RSS median %.1f MiB (max %.1f MiB)\n",
		n, c.what, runs, walls[len(walls)/2].Round(time.Millisecond), walls[0].Round(time.Millisecond), walls[len(walls)-1].Round(time.Millisecond),
		float64(rss[len(rss)/2])/1024, float64(rss[len(rss)-1])/1024)
	return nil
}

// measureEnv makes lsbench run as a thin parent of one command: it runs the
// command with its own stdout and stderr, then prints to stderr the wall
// time, peak RSS and CPU time (user and system) of the command, in
// measureFormat.
//
// Why a separate process: Go starts children with vfork (CLONE_VM), and
// Linux folds the peak RSS of the memory the child shared until exec (the
// parent's) into the child's ru_maxrss. Measured from this benchmark, whose
// own peak includes seeding and decoding answers, every `ls` would appear
// to use that much. A fresh, small parent keeps the figure the command's own.
const measureEnv = "LSBENCH_MEASURE"

const measureFormat = "lsbench-measure wall=%d maxrss_kib=%d cpu=%d"

func measure(args []string) int {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	t0 := time.Now()
	err := cmd.Run()
	wall := time.Since(t0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	fmt.Fprintf(os.Stderr, "\n"+measureFormat+"\n", int64(wall), cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss, int64(cpu)) // KiB on Linux
	return 0
}

// checkAnswer decodes the `ls -json` output and checks it lists n tenants
// with the statuses wanted, each tenant once.
func checkAnswer(out []byte, n int, want map[string]int) error {
	var v struct {
		Tenants []struct {
			Tenant string `json:"tenant"`
			Status string `json:"status"`
		} `json:"tenants"`
		Counts map[string]int `json:"counts"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return fmt.Errorf("decode ls -json: %w", err)
	}
	if len(v.Tenants) != n {
		return fmt.Errorf("%d tenants listed, want %d", len(v.Tenants), n)
	}
	got := map[string]int{}
	seen := make(map[string]bool, n)
	for _, t := range v.Tenants {
		got[t.Status]++
		if seen[t.Tenant] {
			return fmt.Errorf("tenant %s listed twice", t.Tenant)
		}
		seen[t.Tenant] = true
	}
	for status, w := range want {
		if got[status] != w || v.Counts[status] != w {
			return fmt.Errorf("%d tenants %q (counts say %d), want %d; all: %v", got[status], status, v.Counts[status], w, got)
		}
	}
	return nil
}

// remoteSeeded reports whether the bucket holds the last tenant of a seed
// of n tenants with its objects, as a finished earlier run leaves it.
func remoteSeeded(ctx context.Context, client *s3.Client, conn s3conn.Conn, n, objects int) bool {
	out, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket: aws.String(conn.Bucket), Prefix: aws.String(conn.TenantPath(guid(n-1)) + "/"),
	})
	if err != nil || len(out.Contents) != objects {
		return false
	}
	next, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket: aws.String(conn.Bucket), Prefix: aws.String(conn.TenantPath(guid(n)) + "/"), MaxKeys: aws.Int32(1),
	})
	return err == nil && len(next.Contents) == 0
}

// localSeeded reports whether dir holds exactly n databases, the last one
// of a seed of n with its Litestream state.
func localSeeded(dir string, n int) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	dbs := 0
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".db") {
			dbs++
		}
	}
	_, err = os.Stat(filepath.Join(dir, "."+guid(n-1)+".db-litestream", "ltx", "0", ltx.FormatFilename(tenantTXID, tenantTXID)))
	return dbs == n && err == nil
}

func guid(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i) }

// tenantTXID is the position every tenant is at, locally and in S3: the
// benchmark's fleet is all in sync, so ls does the full join for each.
const tenantTXID = 20

func seedRemote(ctx context.Context, client *s3.Client, conn s3conn.Conn, n, objects int) error {
	body := bytes.Repeat([]byte{'x'}, 200)
	keys := func(g string) []string {
		ks := []string{
			fmt.Sprintf("%s/0009/%s", conn.TenantPath(g), ltx.FormatFilename(1, 10)),
			fmt.Sprintf("%s/0001/%s", conn.TenantPath(g), ltx.FormatFilename(1, 10)),
		}
		for j := 0; len(ks) < objects; j++ {
			tx := ltx.TXID(tenantTXID - j)
			ks = append(ks, fmt.Sprintf("%s/0000/%s", conn.TenantPath(g), ltx.FormatFilename(tx, tx)))
		}
		return ks[:objects]
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	var done atomic.Int64
	for i := 0; i < n && gctx.Err() == nil; i++ {
		for _, key := range keys(guid(i)) {
			g.Go(func() error {
				_, err := client.PutObject(gctx, &s3.PutObjectInput{Bucket: aws.String(conn.Bucket), Key: aws.String(key), Body: bytes.NewReader(body)})
				if d := done.Add(1); d%10000 == 0 {
					fmt.Fprintf(os.Stderr, "  %d objects\n", d)
				}
				return err
			})
		}
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("seed S3: %w", err)
	}
	return nil
}

func seedLocal(dir string, n int) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	page := make([]byte, 4096)
	copy(page, "SQLite format 3\x00")
	var buf bytes.Buffer
	enc, err := ltx.NewEncoder(&buf)
	if err != nil {
		return err
	}
	if err := enc.EncodeHeader(ltx.Header{Version: ltx.Version, Flags: ltx.HeaderFlagNoChecksum, PageSize: 4096, Commit: 1,
		MinTXID: tenantTXID, MaxTXID: tenantTXID, Timestamp: time.Now().UnixMilli()}); err != nil {
		return err
	}
	if err := enc.EncodePage(ltx.PageHeader{Pgno: 1}, page); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	ltxFile := buf.Bytes()
	for i := 0; i < n; i++ {
		name := guid(i) + ".db"
		if err := os.WriteFile(filepath.Join(dir, name), page, 0o644); err != nil {
			return err
		}
		l0 := filepath.Join(dir, "."+name+"-litestream", "ltx", "0")
		if err := os.MkdirAll(l0, 0o755); err != nil {
			return err
		}
		for tx := tenantTXID - 1; tx <= tenantTXID; tx++ {
			if err := os.WriteFile(filepath.Join(l0, ltx.FormatFilename(ltx.TXID(tx), ltx.TXID(tx))), ltxFile, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}
