package verify

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// The restore reads the objects the chain check has just read: one
// tenant's verification keeps what it downloaded (small objects, up to a
// budget) and its listings, so that each object is fetched once and the
// restore uses exactly the files that were checked. The cache lives for
// one tenant's verification.
const (
	cacheObjectMax = 16 << 20
	cacheBudget    = 48 << 20
)

type cachedObject struct {
	body []byte
	meta map[string]string
}

// tenantCache is an API that remembers whole GETs and listings.
type tenantCache struct {
	API
	mu      sync.Mutex
	objects map[string]cachedObject
	lists   map[string]*s3.ListObjectsV2Output
	held    int64
}

func newTenantCache(api API) *tenantCache {
	return &tenantCache{API: api, objects: map[string]cachedObject{}, lists: map[string]*s3.ListObjectsV2Output{}}
}

func listKey(in *s3.ListObjectsV2Input) string {
	return strings.Join([]string{aws.ToString(in.Bucket), aws.ToString(in.Prefix), aws.ToString(in.Delimiter),
		aws.ToString(in.ContinuationToken), aws.ToString(in.StartAfter), strconv.Itoa(int(aws.ToInt32(in.MaxKeys)))}, "\x00")
}

func (c *tenantCache) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	k := listKey(in)
	c.mu.Lock()
	out, ok := c.lists[k]
	c.mu.Unlock()
	if ok {
		return out, nil
	}
	out, err := c.API.ListObjectsV2(ctx, in, opts...)
	if err == nil {
		c.mu.Lock()
		c.lists[k] = out
		c.mu.Unlock()
	}
	return out, err
}

func (c *tenantCache) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	key := aws.ToString(in.Bucket) + "\x00" + aws.ToString(in.Key)
	c.mu.Lock()
	obj, ok := c.objects[key]
	c.mu.Unlock()
	if ok {
		from, to, ok := parseRange(aws.ToString(in.Range), int64(len(obj.body)))
		if ok {
			b := obj.body[from:to]
			return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(b)), ContentLength: aws.Int64(int64(len(b))), Metadata: obj.meta}, nil
		}
	}
	out, err := c.API.GetObject(ctx, in, opts...)
	if err != nil || in.Range != nil || out.ContentLength == nil || *out.ContentLength > cacheObjectMax {
		return out, err
	}
	size := *out.ContentLength
	c.mu.Lock()
	room := c.held+size <= cacheBudget
	if room {
		c.held += size // reserved before the read: parallel reads cannot overrun the budget
	}
	c.mu.Unlock()
	if !room {
		return out, nil
	}
	body, err := io.ReadAll(io.LimitReader(out.Body, size+1))
	out.Body.Close()
	if err == nil && int64(len(body)) != size {
		err = fmt.Errorf("get %s: %d bytes, announced %d", aws.ToString(in.Key), len(body), size)
	}
	c.mu.Lock()
	if err == nil {
		c.objects[key] = cachedObject{body: body, meta: out.Metadata}
	} else {
		c.held -= size
	}
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out.Body = io.NopCloser(bytes.NewReader(body))
	return out, nil
}

// parseRange reads "" (the whole object), "bytes=A-" and "bytes=A-B" as
// S3 does, for an object of n bytes; ok is false for anything else (the
// request then goes to S3).
func parseRange(r string, n int64) (from, to int64, ok bool) {
	if r == "" {
		return 0, n, true
	}
	spec, found := strings.CutPrefix(r, "bytes=")
	a, b, dash := strings.Cut(spec, "-")
	if !found || !dash {
		return 0, 0, false
	}
	from, err := strconv.ParseInt(a, 10, 64)
	if err != nil || from < 0 || from >= n {
		return 0, 0, false
	}
	to = n
	if b != "" {
		last, err := strconv.ParseInt(b, 10, 64)
		if err != nil || last < from {
			return 0, 0, false
		}
		to = min(last+1, n)
	}
	return from, to, true
}
