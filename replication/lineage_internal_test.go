package replication

import (
	"bytes"
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/superfly/ltx"

	"github.com/litefleet/litefleet/hosts"
)

// TestLineageSegments: each holder begins its segment at its first
// upload, from the replica's newest TXID, and its files carry the
// generation; a holder continues its own segment under the same claim, and
// begins a new one after another host's, even when its new claim repeats
// the generation number of its old one (claims start again at 1 after a
// release): otherwise its new files would be strays of its old generation.
func TestLineageSegments(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	ctx := context.Background()
	_, api, mk := testClient(t, true)
	var stateA, stateB lineageState
	holder := func(host string, ls *lineageState) *tenantClient {
		c := mk()
		c.host, c.claimGen, c.lineage = host, 1, ls
		return c
	}
	write := func(c *tenantClient, txid uint64) int64 {
		t.Helper()
		if _, err := c.WriteLTXFile(ctx, 0, ltxTXID(txid), ltxTXID(txid), bytes.NewReader(makeLTX(t, ltxTXID(txid), ltxTXID(txid), 1))); err != nil {
			t.Fatal(err)
		}
		head := headMeta(t, c, txid)
		return hosts.Generation(head)
	}
	if gen := write(holder("a", &stateA), 1); gen != 1 {
		t.Fatalf("host a's first file is of generation %d, want 1", gen)
	}
	if gen := write(holder("a", &stateA), 2); gen != 1 {
		t.Fatalf("host a's file after a wake is of generation %d, want 1 (its own segment)", gen)
	}
	if gen := write(holder("b", &stateB), 3); gen != 2 {
		t.Fatalf("host b's file is of generation %d, want 2", gen)
	}
	stateA.forget() // host a takes a new claim, generation 1 again
	if gen := write(holder("a", &stateA), 4); gen != 3 {
		t.Fatalf("host a's file under its new claim is of generation %d, want 3", gen)
	}
	rec, err := hosts.ReadLineage(ctx, api, mk().bucket, mk().path)
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, s := range rec.Segments {
		got = append(got, s.Since)
	}
	if len(got) != 3 || got[0] != 0 || got[1] != 2 || got[2] != 3 {
		t.Fatalf("segments begin at TXIDs %v, want [0 2 3]", got)
	}
}

func ltxTXID(n uint64) ltx.TXID { return ltx.TXID(n) }

func headMeta(t *testing.T, c *tenantClient, txid uint64) map[string]string {
	t.Helper()
	out, err := c.api.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(c.key(0, ltx.TXID(txid), ltx.TXID(txid)))})
	if err != nil {
		t.Fatal(err)
	}
	return out.Metadata
}
