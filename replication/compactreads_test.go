package replication

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/benbjohnson/litestream"
	"github.com/superfly/ltx"
)

// connsPerHost is s3conn's cap on one client's connections to a host
// (newHTTPClient's MaxConnsPerHost).
const connsPerHost = 48

// countedOpens is a tenant's replica client that counts the opens begun.
type countedOpens struct {
	*tenantClient
	begun   atomic.Int64
	pastCap chan struct{} // closed when an open past the cap begins
}

func (c *countedOpens) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	if c.begun.Add(1) == connsPerHost+1 {
		close(c.pastCap)
	}
	return c.tenantClient.OpenLTXFile(ctx, level, minTXID, maxTXID, offset, size)
}

// TestCompactionOfManyRemoteFiles: Litestream compacts a level by opening
// every source file before reading any. A replicator that took over a
// tenant (a restored copy: none of the older level-0 files is on its disk)
// opens them all from S3, and there may be more of them than the shared
// client has connections (chaos seed 35: 130 level-0 files of the big
// tenant after a partition, 48 connections). Each open stream held a
// connection: the 49th open waited forever for one, the compaction never
// ended, and every request of the client behind it (heartbeat, host
// record, deletes) timed out until the process stopped. A control request
// made once the compaction is past the cap must be answered, and the
// compaction must end with every file merged.
func TestCompactionOfManyRemoteFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	ctx := context.Background()
	tc, api, _ := testClient(t, true)
	const n = 2 * connsPerHost
	for txid := ltx.TXID(1); txid <= n; txid++ {
		if _, err := tc.WriteLTXFile(ctx, 0, txid, txid, bytes.NewReader(makeLTX(t, txid, txid, 2))); err != nil {
			t.Fatalf("write level-0 file %d: %v", txid, err)
		}
	}
	c := &countedOpens{tenantClient: tc, pastCap: make(chan struct{})}

	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	type result struct {
		info *ltx.FileInfo
		err  error
	}
	done := make(chan result, 1)
	go func() {
		info, err := litestream.NewCompactor(c, slog.New(slog.DiscardHandler)).Compact(cctx, 1)
		done <- result{info, err}
	}()

	select {
	case <-c.pastCap:
	case r := <-done:
		t.Fatalf("the compaction ended (%v) after %d opens, before its open number %d", r.err, c.begun.Load(), connsPerHost+1)
	case <-time.After(30 * time.Second):
		t.Fatalf("the compaction began %d opens in 30s, not %d", c.begun.Load(), connsPerHost+1)
	}
	// A heartbeat's request on the same client, with a heartbeat's bound.
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	_, err := api.PutObject(pctx, &s3.PutObjectInput{Bucket: aws.String(tc.bucket), Key: aws.String(".litefleet/hosts/h1/heartbeat.json"),
		Body: bytes.NewReader([]byte(`{}`))})
	pcancel()
	if err != nil {
		t.Errorf("a heartbeat PUT on the shared client during a compaction of %d remote files: %v", n, err)
	}

	var r result
	select {
	case r = <-done:
	case <-time.After(40 * time.Second):
		t.Fatalf("the compaction of %d remote level-0 files did not end within 40s", n)
	}
	if r.err != nil {
		t.Fatalf("compaction of %d remote level-0 files: %v", n, r.err)
	}
	if r.info.MinTXID != 1 || r.info.MaxTXID != n {
		t.Fatalf("compacted %s-%s, want 1-%d", r.info.MinTXID, r.info.MaxTXID, n)
	}
	dec := ltx.NewDecoder(bytes.NewReader(tc.object(t, 1, 1, n)))
	if err := dec.Verify(); err != nil {
		t.Fatalf("the compacted file: %v", err)
	}
}
