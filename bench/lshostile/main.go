// Command lshostile measures the peak memory of `litefleet ls -json` over a
// bucket with hostile content: beside -tenants real tenant prefixes and
// the honest record of the host that replicates half of them, a live host
// whose record is a gzip bomb of valid JSON (a few MB that expand to
// -expand MiB), an oversized lock.json, and, with -near, a second hostile
// host whose record sits just under every limit (499,000 entries, 40 MiB
// of JSON, of tenants that do not exist). It runs ls as a child process, takes its
// peak RSS from the kernel (getrusage of the child), checks the answer
// (every tenant listed, each hostile record named in one line), and prints
// the figure. Run it through scripts/with-s3.sh, which starts the S3
// server:
//
//	go build -o bin/litefleet ./cmd/litefleet
//	scripts/with-s3.sh go run ./bench/lshostile -tenants 1000
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/s3conn"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "lshostile:", err)
		os.Exit(1)
	}
}

func run() error {
	n := flag.Int("tenants", 1000, "real tenant prefixes (3 LTX objects each)")
	expand := flag.Int("expand", 256, "MiB the bomb record expands to (256: about 10 MiB gzipped, as the record of issue 16)")
	lockMiB := flag.Int("lock", 64, "MiB of the oversized lock.json")
	near := flag.Bool("near", false, "also a host whose record is just under every limit (499,000 entries of tenants that do not exist)")
	runs := flag.Int("runs", 3, "runs of ls")
	bin := flag.String("litefleet", "bin/litefleet", "litefleet binary")
	flag.Parse()
	endpoint := os.Getenv("LITEFLEET_TEST_S3_ENDPOINT")
	if endpoint == "" {
		return errors.New("no S3 server: run through scripts/with-s3.sh")
	}
	ctx := context.Background()
	conn := s3conn.Conn{Bucket: fmt.Sprintf("lshostile-%d", time.Now().UnixNano()%1e9), Endpoint: endpoint,
		AccessKeyID: os.Getenv("LITEFLEET_TEST_S3_ACCESS_KEY"), SecretAccessKey: os.Getenv("LITEFLEET_TEST_S3_SECRET_KEY")}
	client, err := s3conn.NewClient(ctx, conn)
	if err != nil {
		return err
	}
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(conn.Bucket)}); err != nil {
		return fmt.Errorf("create bucket: %w", err)
	}
	put := func(key string, body io.ReadSeeker) error {
		_, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(conn.Bucket), Key: aws.String(key), Body: body})
		if err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
		return nil
	}

	start := time.Now()
	names := make([]string, *n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range *n {
		names[i] = fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
		g.Go(func() error {
			for tx := 1; tx <= 3; tx++ {
				key := fmt.Sprintf("%s/0000/%s", conn.TenantPath(names[i]), ltx.FormatFilename(ltx.TXID(tx), ltx.TXID(tx)))
				if gctx.Err() != nil {
					return gctx.Err()
				}
				if err := put(key, bytes.NewReader([]byte("l0"))); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// web-1 replicates the first half, honestly.
	honest := &hosts.Record{Host: "web-1", Version: "bench", At: time.Now().UTC()}
	for _, name := range names[:*n/2] {
		honest.Tenants = append(honest.Tenants, hosts.TenantRecord{Name: name, State: "sleeping", Local: 3, Replicated: 3, LastSync: time.Now().Unix()})
	}
	body, err := hosts.EncodeRecord(honest)
	if err != nil {
		return err
	}
	if err := put(layout.RecordKey("web-1"), bytes.NewReader(body)); err != nil {
		return err
	}
	// evil-1's record is a bomb; evil-2's, with -near, is at the limits.
	bomb, size, err := bombFile(*expand<<20, 200, 0, "evil-1")
	if err != nil {
		return err
	}
	defer os.Remove(bomb.Name())
	if err := put(layout.RecordKey("evil-1"), bomb); err != nil {
		return err
	}
	fmt.Printf("bomb record: %.1f MiB gzipped, %d MiB of valid JSON\n", float64(size)/(1<<20), *expand)
	liveHosts := []string{"web-1", "evil-1"}
	if *near {
		// 499,000 entries, 40 MiB of JSON: under every limit.
		f, size, err := bombFile(hosts.MaxRecordExpanded, 0, hosts.MaxRecordTenants/1000-1, "evil-2")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		if err := put(layout.RecordKey("evil-2"), f); err != nil {
			return err
		}
		fmt.Printf("record at the limits: %.1f MiB gzipped\n", float64(size)/(1<<20))
		liveHosts = append(liveHosts, "evil-2")
	}
	lock, err := junkFile(*lockMiB << 20)
	if err != nil {
		return err
	}
	defer os.Remove(lock.Name())
	if err := put(conn.TenantPath(names[0])+"/lock.json", lock); err != nil {
		return err
	}
	fmt.Printf("seeded %d tenants, the records and a %d MiB lock.json in %s\n", *n, *lockMiB, time.Since(start).Round(time.Millisecond))

	env := append(os.Environ(), "AWS_ACCESS_KEY_ID="+conn.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+conn.SecretAccessKey)
	args := []string{"ls", "-json", "-no-cache", "-bucket", conn.Bucket, "-endpoint", endpoint}
	fmt.Printf("command: %s %s\n", *bin, strings.Join(args, " "))
	for i := range *runs {
		// Fresh heartbeats: every host is alive when ls runs.
		for _, h := range liveHosts {
			if err := put(layout.HeartbeatKey(h), bytes.NewReader([]byte(`{"host":"`+h+`"}`))); err != nil {
				return err
			}
		}
		cmd := exec.Command(*bin, args...)
		cmd.Env = env
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		t0 := time.Now()
		runErr := cmd.Run()
		wall := time.Since(t0)
		if cmd.ProcessState == nil {
			return fmt.Errorf("run ls: %w", runErr)
		}
		ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		if ru == nil {
			return errors.New("no resource usage for the child")
		}
		if err := check(out.Bytes(), *n, liveHosts[1:]); err != nil {
			return fmt.Errorf("run %d (%v, stderr %q): %w", i+1, runErr, errb.String(), err)
		}
		fmt.Printf("run %d: peak RSS %.1f MiB, wall %s, exit %v\n", i+1, float64(ru.Maxrss)/1024, wall.Round(time.Millisecond), runErr)
	}
	return nil
}

// check reads ls -json: every tenant listed, each hostile host named with
// its record refused in one line.
func check(out []byte, n int, hostile []string) error {
	var v struct {
		Tenants []struct {
			Tenant string `json:"tenant"`
		} `json:"tenants"`
		Hosts []struct {
			Name  string `json:"host"`
			Error string `json:"error"`
		} `json:"hosts"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return fmt.Errorf("decode ls -json: %w", err)
	}
	if len(v.Tenants) < n {
		return fmt.Errorf("%d tenants listed, want at least %d", len(v.Tenants), n)
	}
	for _, h := range hostile {
		found := false
		for _, s := range v.Hosts {
			if s.Name == h {
				found = true
				if h == "evil-1" && (!strings.Contains(s.Error, "is over 64 MiB uncompressed: ignored") || strings.Contains(s.Error, "\n")) {
					return fmt.Errorf("host %s: error %q, want its record refused in one line", h, s.Error)
				}
				fmt.Printf("host %s: %s\n", h, firstOr(s.Error, "(record read)"))
			}
		}
		if !found {
			return fmt.Errorf("host %s is not listed", h)
		}
	}
	return nil
}

func firstOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// bombFile writes to a temporary file a gzipped host record of host that
// is valid JSON and expands to about expanded bytes: a block of 1,000
// tenant entries (each with a reason of pad bytes) compressed once and
// repeated as gzip members (at most maxBlocks times when it is not 0),
// which a reader takes as one stream.
func bombFile(expanded, pad, maxBlocks int, host string) (*os.File, int64, error) {
	member := func(text string) []byte {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write([]byte(text))
		_ = zw.Close()
		return buf.Bytes()
	}
	var block strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&block, `{"n":"%08x-ffff-4000-8000-%012x","s":"replicating","e":"%s","l":%d,"r":%d},`, i, i, strings.Repeat("x", pad), i+7, i+7)
	}
	f, err := os.CreateTemp("", "lshostile-*.json.gz")
	if err != nil {
		return nil, 0, err
	}
	w := bufio.NewWriter(f)
	w.Write(member(fmt.Sprintf(`{"host":%q,"tenants":[`, host)))
	body := member(block.String())
	blocks := max(expanded/block.Len(), 1)
	if maxBlocks > 0 {
		blocks = min(blocks, maxBlocks)
	}
	for range blocks {
		w.Write(body)
	}
	w.Write(member(`{"n":"end","s":"failed"}]}`))
	if err := w.Flush(); err != nil {
		return nil, 0, err
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, 0, err
	}
	_, err = f.Seek(0, io.SeekStart)
	return f, size, err
}

// junkFile is a temporary file of size bytes of JSON that never ends.
func junkFile(size int) (*os.File, error) {
	f, err := os.CreateTemp("", "lshostile-lock-*.json")
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriter(f)
	w.WriteString(`{"generation":1,"owner":"`)
	chunk := strings.Repeat("x", 64<<10)
	for written := 0; written < size; written += len(chunk) {
		w.WriteString(chunk)
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	_, err = f.Seek(0, io.SeekStart)
	return f, err
}
