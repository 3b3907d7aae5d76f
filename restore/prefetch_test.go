package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litefleet/litefleet/s3conn"
)

// meteredS3 serves objects of a fixed size and checks, at every GET, that
// the bytes served and not yet applied stay within the prefetch budget.
type meteredS3 struct {
	budget  int64
	mu      sync.Mutex
	served  int64 // bytes handed out
	applied int64 // bytes the applier is through with
	over    error
	got     chan string
}

func (m *meteredS3) ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	return nil, errors.New("not listed")
}

func (m *meteredS3) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	const size = 1000
	m.mu.Lock()
	if ahead := m.served - m.applied + size; ahead > m.budget && m.over == nil {
		m.over = fmt.Errorf("GET %s with %d bytes ahead of the applier, budget %d", aws.ToString(in.Key), ahead, m.budget)
	}
	m.served += size
	m.mu.Unlock()
	m.got <- aws.ToString(in.Key)
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(make([]byte, size))), ContentLength: aws.Int64(size)}, nil
}

func (m *meteredS3) apply(n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.applied += n
}

// TestPrefetchBoundedByBytes: however slowly the applier takes the
// objects, the prefetch holds at most its budget of bytes ahead of it, and
// still hands every object over, in order.
func TestPrefetchBoundedByBytes(t *testing.T) {
	const n, size, budget = 40, 1000, 3500
	api := &meteredS3{budget: budget, got: make(chan string, n)}
	files := make([]PlanFile, n)
	for i := range files {
		files[i] = PlanFile{Key: fmt.Sprintf("k%02d", i), Size: size}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pre := prefetch(ctx, api, s3conn.Conn{Bucket: "bkt"}, files, nil, budget)
	if pre.futures[0] != nil {
		t.Fatal("the first object is prefetched: it streams")
	}
	// The applier has not started: three objects fit the budget.
	for range budget / size {
		<-api.got
	}
	for i := 1; i < n; i++ {
		res := <-pre.futures[i]
		if res.err != nil || len(res.data) != size {
			t.Fatalf("object %d: %d bytes, %v", i, len(res.data), res.err)
		}
		api.apply(size)
		pre.budget.Release(size)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if api.over != nil {
		t.Fatal(api.over)
	}
	if api.served != (n-1)*size {
		t.Fatalf("served %d bytes, want %d", api.served, (n-1)*size)
	}
}
