package fleet

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/tenants"
)

// switchAPI answers listings with one tenant's LTX file, or fails with err.
type switchAPI struct{ err error }

func (a *switchAPI) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	if a.err != nil {
		return nil, a.err
	}
	key := aws.ToString(in.Prefix) + vg1 + "/0000/0000000000000001-0000000000000001.ltx"
	return &s3.ListObjectsV2Output{IsTruncated: aws.Bool(false), Contents: []types.Object{
		{Key: aws.String(key), Size: aws.Int64(100), LastModified: aws.Time(time.Now())},
	}}, nil
}

func (a *switchAPI) GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	return nil, errors.New("no objects here")
}

// TestRefreshUnknownIsNotServedFromCache: when S3 refuses the request or
// the bucket is missing, local rows are "unknown" with the reason, and the
// last good answer (in memory or in the cache file) is not shown as if S3
// were merely out of reach; when S3 is out of reach, it is, with its age.
func TestRefreshUnknownIsNotServedFromCache(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, vg1+".db"), sqlitePage)
	writeFile(t, filepath.Join(dir, vg2+".db"), sqlitePage)
	api := &switchAPI{}
	conn := s3conn.Conn{Bucket: "bkt"}
	cache := filepath.Join(t.TempDir(), "cache.json")
	newFleet := func() *Fleet {
		return &Fleet{Conn: conn, API: api, Discover: tenants.DiscoverOptions{Dirs: []string{dir}}, CacheFile: cache}
	}
	fl := newFleet()
	ctx := context.Background()
	v, err := fl.Refresh(ctx)
	if err != nil || v.RemoteErr != "" || len(v.Rows) != 2 {
		t.Fatalf("first refresh: %v %+v", err, v)
	}

	for _, tt := range []struct {
		name string
		err  error
		note string
	}{
		{"refused", &smithy.GenericAPIError{Code: "InvalidAccessKeyId", Message: "no such key"}, "S3: credentials refused"},
		{"no bucket", &smithy.GenericAPIError{Code: "NoSuchBucket", Message: "gone"}, "S3: bucket does not exist"},
		{"no credentials", errors.New("operation error S3: ListObjectsV2, failed to retrieve credentials: no EC2 IMDS role found"), "S3: no credentials found"},
	} {
		api.err = tt.err
		// The same process (memory) and a new one (cache file).
		for _, f := range []*Fleet{fl, newFleet()} {
			v, err := f.Refresh(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if v.FromCache || !v.RemoteAt.IsZero() || v.RemoteErr == "" {
				t.Errorf("%s: the last good answer is shown: from cache %v, remote at %v, error %q", tt.name, v.FromCache, v.RemoteAt, v.RemoteErr)
			}
			for _, r := range v.Rows {
				if r.Status != StatusUnknown || r.Note != tt.note || r.Remote != nil {
					t.Errorf("%s: %s is %q (%q), want unknown (%q)", tt.name, r.Tenant, r.Status, r.Note, tt.note)
				}
			}
		}
	}

	// Out of reach: the last good answer stands in, with its age.
	api.err = &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	for _, f := range []*Fleet{fl, newFleet()} {
		v, err := f.Refresh(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v.RemoteAt.IsZero() || !strings.Contains(v.RemoteErr, "cannot reach S3") {
			t.Errorf("unreachable: remote at %v, error %q", v.RemoteAt, v.RemoteErr)
		}
		for _, r := range v.Rows {
			if r.Tenant == vg1 && (r.Remote == nil || r.Status == StatusUnknown) {
				t.Errorf("unreachable: %s shows no cached S3 side: %+v", r.Tenant, r)
			}
		}
	}

	// No bucket at all: unknown as well, not "not replicating".
	v, err = (&Fleet{Discover: tenants.DiscoverOptions{Dirs: []string{dir}}}).Refresh(ctx)
	if err != nil || len(v.Rows) != 2 || v.Rows[0].Status != StatusUnknown {
		t.Fatalf("no bucket: %v %+v", err, v.Rows)
	}
}
