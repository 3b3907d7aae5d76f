package s3conn_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/s3conn"
)

// counts returns the process's attempts of op, and its failures of op
// with code.
func counts(op, code string) (attempts, failures int64) {
	a, f := s3conn.RequestCounts()
	for _, c := range a {
		if c.Op == op {
			attempts += c.N
		}
	}
	for _, c := range f {
		if c.Op == op && c.Code == code {
			failures += c.N
		}
	}
	return attempts, failures
}

// A server that answers SlowDown every time makes the SDK retry: each
// attempt is counted, as the metrics promise, not each call.
func TestRequestCountsEveryAttemptAndItsCode(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>slow down</Message></Error>`))
	}))
	defer srv.Close()
	conn := s3conn.Conn{Bucket: "bkt", Endpoint: srv.URL, AccessKeyID: "k", SecretAccessKey: "s"}
	client, err := s3conn.NewClient(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	a0, f0 := counts("GetObject", "SlowDown")
	_, err = client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("bkt"), Key: aws.String("k")})
	if err == nil {
		t.Fatal("GetObject succeeded against a server that always says SlowDown")
	}
	a1, f1 := counts("GetObject", "SlowDown")
	if hits.Load() < 2 {
		t.Fatalf("the server saw %d attempts: the SDK did not retry, the test proves nothing", hits.Load())
	}
	if got := a1 - a0; got != hits.Load() {
		t.Fatalf("counted %d attempts of GetObject, the server saw %d", got, hits.Load())
	}
	if got := f1 - f0; got != hits.Load() {
		_, all := s3conn.RequestCounts()
		t.Fatalf("counted %d attempts failed with SlowDown, want %d (all failures: %v)", got, hits.Load(), all)
	}
}

// On a real server: a GET of a missing key is one attempt, failed with
// NoSuchKey; a listing is one attempt, not failed.
func TestRequestCountsOnRealServer(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	client, err := s3conn.NewClient(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	g0, nk0 := counts("GetObject", "NoSuchKey")
	l0, lf0 := counts("ListObjectsV2", "NoSuchKey")
	_, err = client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(conn.Bucket), Key: aws.String("databases/nothing/here")})
	if err == nil {
		t.Fatal("GET of a missing key succeeded")
	}
	if _, err := s3browse.ListTenants(context.Background(), client, conn); err != nil {
		t.Fatal(err)
	}
	g1, nk1 := counts("GetObject", "NoSuchKey")
	l1, lf1 := counts("ListObjectsV2", "NoSuchKey")
	if g1-g0 != 1 || nk1-nk0 != 1 {
		t.Fatalf("GetObject: %d attempts, %d NoSuchKey; want 1 and 1", g1-g0, nk1-nk0)
	}
	if l1-l0 != 1 || lf1 != lf0 {
		t.Fatalf("ListObjectsV2: %d attempts, %d failures; want 1 and 0", l1-l0, lf1-lf0)
	}
	_, failures := s3conn.RequestCounts()
	for _, f := range failures {
		if f.Op == "GetObject" && f.Code == "NoSuchKey" && !f.Expected {
			t.Fatalf("a GET of a missing key is counted as a failure, not as an expected answer: %+v", f)
		}
	}
}

// The protocol's answers (404 to a GET or HEAD, 412 to a conditional
// write) are not failures; the same codes elsewhere, and real failures,
// are.
func TestExpectedAnswer(t *testing.T) {
	for _, c := range []struct {
		op, code string
		want     bool
	}{
		{"GetObject", "NoSuchKey", true},
		{"HeadObject", "NotFound", true},
		{"HeadObject", "404", true},
		{"PutObject", "PreconditionFailed", true},
		{"CompleteMultipartUpload", "412", true},
		{"GetObject", "NotModified", true},
		{"ListObjectsV2", "NoSuchBucket", false},
		{"PutObject", "NoSuchKey", false},
		{"DeleteObject", "404", false},
		{"GetObject", "AccessDenied", false},
		{"PutObject", "SlowDown", false},
		{"PutObject", "network", false},
		{"GetObject", "500", false},
	} {
		if got := s3conn.ExpectedAnswer(c.op, c.code); got != c.want {
			t.Errorf("ExpectedAnswer(%s, %s) = %v, want %v", c.op, c.code, got, c.want)
		}
	}
}
