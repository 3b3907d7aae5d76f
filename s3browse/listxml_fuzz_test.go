package s3browse

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// docTransport answers every request with one ListObjectsV2 document, as a
// server would, without a network.
type docTransport struct{ doc []byte }

func (d docTransport) Do(r *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/xml"}, "Content-Length": {strconv.Itoa(len(d.doc))}},
		Body:          io.NopCloser(bytes.NewReader(d.doc)),
		ContentLength: int64(len(d.doc)),
		Request:       r,
	}, nil
}

// sdkDecode decodes doc as a ListObjectsV2 response with the SDK's own
// decoder, through a client whose transport returns it.
func sdkDecode(doc []byte) (*s3.ListObjectsV2Output, error) {
	client := s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String("http://127.0.0.1:1"),
		UsePathStyle: true,
		Credentials:  aws.AnonymousCredentials{},
		HTTPClient:   docTransport{doc},
		Retryer:      aws.NopRetryer{},
	})
	return client.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String("bkt")})
}

// FuzzDecodeListV2 compares the fast list decoder with the SDK's on any
// document: when decodeListV2 takes a document (reports true), the SDK
// must read the same fields from it; when it does not, the SDK is asked
// anyway, so only a wrong "true" can fail. Names and keys are untrusted:
// a listing is the bucket's owner's text.
//
//	go test ./s3browse -run '^$' -fuzz FuzzDecodeListV2 -fuzztime 60s
func FuzzDecodeListV2(f *testing.F) {
	for _, doc := range oddListDocs {
		f.Add([]byte(doc))
	}
	r := listResult{Name: "bkt", Prefix: "databases/", KeyCount: 2, MaxKeys: 1000, IsTruncated: true, NextContinuationToken: "tok&<>", EncodingType: "url",
		Contents: []listObject{
			{Key: "databases/a%20b/0000/0000000000000001-0000000000000001.ltx", Size: 623, LastModified: time.Date(2026, 11, 26, 21, 23, 47, 0, time.UTC).Format(time.RFC3339Nano), ETag: `"x"`, StorageClass: "STANDARD"},
			{Key: "databases/\u00e9\u202e/lock.json", Size: 96, LastModified: "2026-11-26T21:23:47.123Z"},
		},
		CommonPrefixes: []listPrefix{{"databases/t1/"}}}
	b, err := xml.Marshal(r)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(append([]byte(xml.Header), b...))
	f.Fuzz(func(t *testing.T, doc []byte) {
		fast, ok := decodeListV2(doc)
		if !ok {
			return // the SDK's decoder reads it in the program too
		}
		sdk, err := sdkDecode(doc)
		if err != nil {
			t.Fatalf("the fast decoder took a document the SDK refuses (%v):\n%q", err, doc)
		}
		if f, s := viewOf(fast), viewOf(sdk); !reflect.DeepEqual(f, s) {
			t.Fatalf("decoded differently:\n fast %s\n  SDK %s\n%q", dumpView(f), dumpView(s), doc)
		}
	})
}
