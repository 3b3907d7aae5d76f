package s3browse_test

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/s3conn"
)

// TestIntegrationScanRanges: against a real server, a listing cut into
// parallel ranges with small pages finds exactly what one sequential
// listing finds, with names in every part of the key space (versitygw
// keeps them as file names: no control characters, no "." or "..").
func TestIntegrationScanRanges(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	client := srv.Client(t, conn)
	ctx := context.Background()

	names := []string{
		"!bang", " space", "-dash", ".dot", "0", "00000000-0000-4000-8000-000000000000", "9", ":colon", "@at",
		"12345678-1234-5678-9ABC-123456789012", "12345678-1234-5678-9abc-123456789012", "A", "Z", "[br", "_under",
		"`tick", "a", "a-b", "a.b", "a0", "ab", "a b", "z", "{brace", "~tilde", "é", "Ω", "日本", "🙂", "plus+sign", "pct%41",
	}
	for i := range 60 {
		names = append(names, fmt.Sprintf("%08x-0000-4000-8000-%012x", (i+1)*104729, i))
	}
	var keys []string
	for i, name := range names {
		for j := range 1 + i%4 {
			keys = append(keys, fmt.Sprintf("%s/%04x/%016x-%016x.ltx", conn.TenantPath(name), j%2, j+1, j+1))
		}
		if i%3 == 0 {
			keys = append(keys, conn.TenantPath(name)+"/lock.json")
		}
	}
	keys = append(keys, conn.TenantsPrefix()+"stray.txt")
	var g errgroup.Group
	g.SetLimit(16)
	for _, k := range keys {
		g.Go(func() error {
			if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(conn.Bucket), Key: aws.String(k), Body: bytes.NewReader([]byte("x"))}); err != nil {
				return fmt.Errorf("put %q: %w", k, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}

	want, err := s3browse.Scan(ctx, client, conn)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != len(names) {
		seen := map[string]bool{}
		for _, s := range want {
			seen[s.Name] = true
		}
		for _, n := range names {
			if !seen[n] {
				t.Errorf("missing %q", n)
			}
		}
		t.Fatalf("sequential listing: %d tenants, want %d", len(want), len(names))
	}
	for _, size := range []int32{3, 7, 20} {
		api := &countingAPI{API: client}
		got, err := s3browse.ScanInRanges(ctx, api, conn, size, 4)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			for i := range max(len(got), len(want)) {
				if i >= len(got) || i >= len(want) || !reflect.DeepEqual(got[i], want[i]) {
					t.Fatalf("pages of %d: first difference at %d of %d/%d", size, i, len(got), len(want))
				}
			}
		}
		if api.startAfter.Load() < 2 {
			t.Errorf("pages of %d: %d listings from StartAfter: want ranges", size, api.startAfter.Load())
		}
	}
}

type countingAPI struct {
	s3conn.API
	startAfter atomic.Int64
}

func (c *countingAPI) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	if in.StartAfter != nil && in.ContinuationToken == nil && in.Delimiter == nil {
		c.startAfter.Add(1)
	}
	return c.API.ListObjectsV2(ctx, in, opts...)
}
