package s3proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/litefleet/litefleet/internal/s3test"
)

func TestMain(m *testing.M) { os.Exit(s3test.Main(m)) }

// TestSDKThroughProxy drives a real S3 server through the proxy with the
// AWS SDK, signatures and all, and checks each call is counted in its
// class: what a replicator sends is what the proxy reports.
func TestSDKThroughProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("needs an S3 server")
	}
	srv := s3test.Start(t)
	conn := srv.Conn(t) // creates the bucket directly, not through the proxy
	p, err := Start(Options{Target: srv.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	conn.Endpoint = p.URL()
	cl := srv.Client(t, conn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := aws.String(conn.Bucket)

	step := func(name string, want Snapshot, f func() error) {
		t.Helper()
		before := p.Snapshot()
		if err := f(); err != nil {
			t.Fatalf("%s through the proxy: %v", name, err)
		}
		if got := p.Snapshot().Sub(before); got != want {
			t.Errorf("%s: counted %+v, want %+v", name, got, want)
		}
	}
	put := func(key string, body []byte) func() error {
		return func() error {
			_, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String(key), Body: bytes.NewReader(body)})
			return err
		}
	}
	ltxKey := "databases/t1/0000/0000000000000001-0000000000000001.ltx"
	step("PutObject", Snapshot{Data: Counts{Put: 1}}, put(ltxKey, []byte("ltx")))
	step("heartbeat PutObject", Snapshot{Control: Counts{Put: 1}}, put(".litefleet/hosts/h/heartbeat.json", []byte("{}")))
	step("ListObjectsV2", Snapshot{Data: Counts{List: 1}}, func() error {
		out, err := cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: b, Prefix: aws.String("databases/t1/")})
		if err == nil && len(out.Contents) != 1 {
			t.Errorf("listing through the proxy: %d objects, want 1", len(out.Contents))
		}
		return err
	})
	step("control ListObjectsV2", Snapshot{Control: Counts{List: 1}}, func() error {
		_, err := cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: b, Prefix: aws.String(".litefleet/hosts/")})
		return err
	})
	step("GetObject", Snapshot{Data: Counts{Get: 1}}, func() error {
		out, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String(ltxKey)})
		if err != nil {
			return err
		}
		defer out.Body.Close()
		body, err := io.ReadAll(out.Body)
		if string(body) != "ltx" {
			t.Errorf("GetObject through the proxy: %q, want %q", body, "ltx")
		}
		return err
	})
	step("HeadObject", Snapshot{Data: Counts{Head: 1}}, func() error {
		_, err := cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String(ltxKey)})
		return err
	})
	step("HeadObject of a missing key", Snapshot{Data: Counts{Head: 1}, ClientErrors: 1}, func() error {
		_, err := cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("databases/t1/none")})
		if err == nil {
			t.Error("HeadObject of a missing key succeeded")
		}
		return nil
	})
	step("CopyObject", Snapshot{Data: Counts{Put: 1}}, func() error {
		_, err := cl.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("databases/t1/copy"), CopySource: aws.String(conn.Bucket + "/" + ltxKey)})
		return err
	})
	// Three parts: CreateMultipartUpload, 3 UploadPart, CompleteMultipartUpload.
	big := bytes.Repeat([]byte("x"), 11<<20)
	step("multipart upload", Snapshot{Data: Counts{Put: 5}}, func() error {
		_, err := manager.NewUploader(cl, func(u *manager.Uploader) { u.PartSize = 5 << 20; u.Concurrency = 1 }).
			Upload(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("databases/t1/big"), Body: bytes.NewReader(big)})
		return err
	})
	step("DeleteObjects", Snapshot{Data: Counts{Delete: 1}}, func() error {
		_, err := cl.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: b, Delete: &types.Delete{Objects: []types.ObjectIdentifier{
			{Key: aws.String("databases/t1/copy")}, {Key: aws.String("databases/t1/big")},
		}}})
		return err
	})
	step("DeleteObject", Snapshot{Data: Counts{Delete: 1}}, func() error {
		_, err := cl.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: aws.String(ltxKey)})
		return err
	})
}

// TestFaultsThroughProxy: DateSkew moves the Date an SDK client reads;
// IgnoreConditions makes a conditional PUT or DELETE that the server
// would refuse go through, still validly signed.
func TestFaultsThroughProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("needs an S3 server")
	}
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	p, err := Start(Options{Target: srv.Endpoint, DateSkew: 2 * time.Minute, IgnoreConditions: true, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	conn.Endpoint = p.URL()
	cl := srv.Client(t, conn)
	ctx := context.Background()
	b, k := aws.String(conn.Bucket), aws.String("x/probe")
	var date time.Time
	if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: k, Body: bytes.NewReader([]byte("a"))}, func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Deserialize.Add(middleware.DeserializeMiddlewareFunc("date", func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleDeserialize(ctx, in)
				if resp, ok := out.RawResponse.(*smithyhttp.Response); ok {
					date, _ = http.ParseTime(resp.Header.Get("Date"))
				}
				return out, md, err
			}), middleware.After)
		})
	}); err != nil {
		t.Fatal(err)
	}
	if d := time.Until(date); d < 100*time.Second || d > 140*time.Second {
		t.Fatalf("Date is %s ahead, want 2m", d)
	}
	if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: k, Body: bytes.NewReader([]byte("b")), IfNoneMatch: aws.String("*")}); err != nil {
		t.Fatalf("If-None-Match over an existing object was not ignored: %v", err)
	}
	if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: k, Body: bytes.NewReader([]byte("c")), IfMatch: aws.String(`"wrong"`)}); err != nil {
		t.Fatalf("If-Match on a wrong ETag was not ignored: %v", err)
	}
	if _, err := cl.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: k, IfMatch: aws.String(`"wrong"`)}); err != nil {
		t.Fatalf("DELETE If-Match on a wrong ETag was not ignored: %v", err)
	}
}
