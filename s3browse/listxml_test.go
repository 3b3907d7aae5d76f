package s3browse

import (
	"context"
	"encoding/xml"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/litefleet/litefleet/s3conn"
)

// listResult is a ListObjectsV2 result as servers write it with
// encoding/xml (versitygw does): what cannot be carried becomes U+FFFD.
type listResult struct {
	XMLName               xml.Name `xml:"http://s3.amazonaws.com/doc/2006-03-01/ ListBucketResult"`
	Name                  string
	Prefix                string
	KeyCount              int
	MaxKeys               int
	Delimiter             string `xml:",omitempty"`
	IsTruncated           bool
	Contents              []listObject
	CommonPrefixes        []listPrefix
	ContinuationToken     string `xml:",omitempty"`
	NextContinuationToken string `xml:",omitempty"`
	StartAfter            string `xml:",omitempty"`
	EncodingType          string `xml:",omitempty"`
}

type listObject struct {
	Key               string
	LastModified      string
	ETag              string
	Size              int64
	StorageClass      string
	Owner             *struct{ ID, DisplayName string } `xml:",omitempty"`
	ChecksumAlgorithm []string                          `xml:",omitempty"`
}

type listPrefix struct{ Prefix string }

// xmlServer serves the documents of docs in turn, with the status given
// for each.
type xmlServer struct {
	docs []string
	code []int
	n    atomic.Int64
}

func (s *xmlServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := int(s.n.Add(1)-1) % len(s.docs)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(s.code[i])
	fmt.Fprint(w, s.docs[i])
}

// decodeBothWays lists through the SDK with and without the fast decoder
// and returns both results.
func decodeBothWays(t *testing.T, doc string, code int) (fast, sdk *s3.ListObjectsV2Output, fastErr, sdkErr error) {
	t.Helper()
	srv := httptest.NewServer(&xmlServer{docs: []string{doc}, code: []int{code}})
	defer srv.Close()
	conn := s3conn.Conn{Bucket: "bkt", Endpoint: srv.URL, AccessKeyID: "id", SecretAccessKey: "secret"}
	client, err := s3conn.NewClient(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	in := &s3.ListObjectsV2Input{Bucket: aws.String("bkt"), EncodingType: types.EncodingTypeUrl}
	fast, fastErr = client.ListObjectsV2(context.Background(), in, fastListDecoding)
	sdk, sdkErr = client.ListObjectsV2(context.Background(), in)
	return fast, sdk, fastErr, sdkErr
}

// listView is what the inventory reads of a listing.
type listView struct {
	Contents                                 []types.Object
	CommonPrefixes                           []types.CommonPrefix
	IsTruncated                              *bool
	KeyCount, MaxKeys                        *int32
	EncodingType                             types.EncodingType
	Name, Prefix, Delimiter, StartAfter      *string
	ContinuationToken, NextContinuationToken *string
}

func viewOf(o *s3.ListObjectsV2Output) *listView {
	if o == nil {
		return nil
	}
	v := &listView{
		CommonPrefixes: o.CommonPrefixes, IsTruncated: o.IsTruncated, KeyCount: o.KeyCount, MaxKeys: o.MaxKeys,
		EncodingType: o.EncodingType, Name: o.Name, Prefix: o.Prefix, Delimiter: o.Delimiter, StartAfter: o.StartAfter,
		ContinuationToken: o.ContinuationToken, NextContinuationToken: o.NextContinuationToken,
	}
	for _, c := range o.Contents {
		v.Contents = append(v.Contents, types.Object{Key: c.Key, Size: c.Size, LastModified: c.LastModified})
	}
	return v
}

// assertSameDecoding fails unless both decoders agree on doc: the same
// fields, or both an error.
func assertSameDecoding(t *testing.T, doc string, code int) {
	t.Helper()
	fast, sdk, fastErr, sdkErr := decodeBothWays(t, doc, code)
	if (fastErr != nil) != (sdkErr != nil) {
		t.Fatalf("errors differ: fast %v, SDK %v\n%s", fastErr, sdkErr, doc)
	}
	if fastErr != nil {
		if fastErr.Error() != sdkErr.Error() {
			t.Errorf("errors differ:\n fast %v\n  SDK %v", fastErr, sdkErr)
		}
		return
	}
	if f, s := viewOf(fast), viewOf(sdk); !reflect.DeepEqual(f, s) {
		t.Errorf("decoded differently:\n fast %s\n  SDK %s\n%s", dumpView(f), dumpView(s), doc)
	}
}

func dumpView(v *listView) string {
	var b strings.Builder
	fmt.Fprintf(&b, "trunc=%v next=%q enc=%q keycount=%v:", aws.ToBool(v.IsTruncated), aws.ToString(v.NextContinuationToken), v.EncodingType, aws.ToInt32(v.KeyCount))
	for _, c := range v.Contents {
		fmt.Fprintf(&b, " [%q %d %s]", aws.ToString(c.Key), aws.ToInt64(c.Size), aws.ToTime(c.LastModified).Format(time.RFC3339Nano))
	}
	for _, p := range v.CommonPrefixes {
		fmt.Fprintf(&b, " <%q>", aws.ToString(p.Prefix))
	}
	return b.String()
}

func marshalList(t *testing.T, r listResult) string {
	t.Helper()
	b, err := xml.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return xml.Header + string(b)
}

// TestDecodeListV2Marshaled: documents as encoding/xml writes them, with
// keys of every kind, decode as the SDK decodes them, and without falling
// back to it.
func TestDecodeListV2Marshaled(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "Z", "0", "/", "-", "_", ".", " ", "+", "%", "<", ">", "&", "'", "\"", "\t", "\n",
		"é", "日本", "🙂", "\u2028", "\u202e", "]]>", "&amp;", "\x01", "\x1b", "\xff", "\r", "\uFFFD", "\x7f"}
	key := func() string {
		var b strings.Builder
		b.WriteString("databases/")
		for range 1 + rng.IntN(12) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		return b.String()
	}
	for i := range 200 {
		r := listResult{Name: "b", Prefix: "databases/", MaxKeys: 1000, IsTruncated: i%2 == 0, StartAfter: key()}
		if i%3 == 0 {
			r.NextContinuationToken, r.ContinuationToken, r.Delimiter = key(), key(), "/"
		}
		if i%4 == 0 {
			r.EncodingType = "url"
		}
		for j := range rng.IntN(20) {
			o := listObject{Key: key(), Size: rng.Int64N(1 << 40), ETag: `"0123456789abcdef"`, StorageClass: "STANDARD",
				LastModified: time.Unix(rng.Int64N(2e9), int64(j)*1e6).UTC().Format("2006-01-02T15:04:05.000Z")}
			if j%5 == 0 {
				o.Owner = &struct{ ID, DisplayName string }{"id", "name"}
				o.ChecksumAlgorithm = []string{"CRC32", "SHA256"}
				o.LastModified = time.Unix(rng.Int64N(2e9), rng.Int64N(1e9)).UTC().Format(time.RFC3339Nano)
			}
			r.Contents = append(r.Contents, o)
		}
		for range rng.IntN(5) {
			r.CommonPrefixes = append(r.CommonPrefixes, listPrefix{key() + "/"})
		}
		r.KeyCount = len(r.Contents) + len(r.CommonPrefixes)
		doc := marshalList(t, r)
		assertSameDecoding(t, doc, 200)
		if _, ok := decodeListV2([]byte(doc)); !ok {
			t.Errorf("fell back to the SDK for a document encoding/xml wrote:\n%s", doc)
		}
	}
}

// oddListDocs are documents outside what servers usually send: each
// decodes as the SDK decodes it, or fails as it fails. They seed the fuzz
// target too.
var oddListDocs = func() []string {
	const head = `<?xml version="1.0" encoding="UTF-8"?>` + "\n"
	obj := `<Contents><Key>k</Key><Size>3</Size><LastModified>2025-01-02T03:04:05.000Z</LastModified></Contents>`
	return []string{
		head + `<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` + obj + `<IsTruncated>false</IsTruncated></ListBucketResult>`,
		// Indented, as AWS documents it.
		head + "<ListBucketResult>\n  <Name>b</Name>\n  " + obj + "\n  <KeyCount>1</KeyCount>\n</ListBucketResult>\n",
		"\r\n<ListBucketResult>\r\n" + obj + "\r\n</ListBucketResult>",
		// Case, self-closing and empty elements, attributes, comments.
		`<listbucketresult><contents><key>k</key><SIZE>7</SIZE></contents><istruncated>true</istruncated></listbucketresult>`,
		`<ListBucketResult/>`,
		`<ListBucketResult><Contents/><Contents><Key/><Size>0</Size></Contents><Prefix></Prefix></ListBucketResult>`,
		`<ListBucketResult a="1" b='>2'><Contents x="y"><Key z="<">k</Key></Contents></ListBucketResult>`,
		`<!-- hi --><ListBucketResult><!-- a --><Contents><!-- b --><Key>k</Key><!-- c --></Contents></ListBucketResult><!-- end -->`,
		`<ListBucketResult><Contents><Key>a<!-- inside -->b</Key></Contents></ListBucketResult>`,
		// Unknown and nested elements.
		`<ListBucketResult><Extra><Deep><Deeper>x</Deeper></Deep>text</Extra>` + obj + `<Owner><ID>1</ID></Owner></ListBucketResult>`,
		`<ListBucketResult><Contents><RestoreStatus><IsRestoreInProgress>true</IsRestoreInProgress></RestoreStatus><Key>k</Key></Contents></ListBucketResult>`,
		// Text that encoding/xml changes or refuses.
		`<ListBucketResult><Contents><Key>a&#xD;b&#9;c&#10;d&#x1F600;</Key></Contents></ListBucketResult>`,
		"<ListBucketResult><Contents><Key>a\r\nb\rc</Key></Contents></ListBucketResult>",
		`<ListBucketResult><Contents><Key><![CDATA[<raw & text>]]></Key></Contents></ListBucketResult>`,
		`<ListBucketResult><Contents><Key>a<![CDATA[b]]></Key></Contents></ListBucketResult>`,
		`<ListBucketResult><Contents><Key>&nbsp;</Key></Contents></ListBucketResult>`,
		`<ListBucketResult><Contents><Key>&#1;</Key></Contents></ListBucketResult>`,
		`<ListBucketResult><Contents><Key>&#xFFFE;</Key></Contents></ListBucketResult>`,
		`<ListBucketResult><Contents><Key>&amp</Key></Contents></ListBucketResult>`,
		"<ListBucketResult><Contents><Key>a\x01b</Key></Contents></ListBucketResult>",
		"<ListBucketResult><Contents><Key>a\xffb</Key></Contents></ListBucketResult>",
		`<ListBucketResult><Contents><Key>a<b/>c</Key></Contents></ListBucketResult>`,
		`<ListBucketResult><s3:Contents xmlns:s3="x"><s3:Key>k</s3:Key></s3:Contents></ListBucketResult>`,
		// Bad numbers, booleans and times.
		`<ListBucketResult><Contents><Size> 3</Size></Contents></ListBucketResult>`,
		`<ListBucketResult><Contents><Size>x</Size></Contents></ListBucketResult>`,
		`<ListBucketResult><IsTruncated>yes</IsTruncated></ListBucketResult>`,
		`<ListBucketResult><IsTruncated>1</IsTruncated><KeyCount>99999999999</KeyCount></ListBucketResult>`,
		`<ListBucketResult><Contents><LastModified>2025-01-02 03:04:05</LastModified></Contents></ListBucketResult>`,
		`<ListBucketResult><Contents><LastModified>2025-01-02T03:04:05+02:00</LastModified></Contents></ListBucketResult>`,
		// Broken or other documents.
		`<ListBucketResult><Contents><Key>k</Key>`,
		`<ListBucketResult><Contents><Key>k</Contents></ListBucketResult>`,
		`<ListBucketResult></ListBucketResult><Again/>`,
		`<!DOCTYPE x><ListBucketResult/>`,
		"\uFEFF<ListBucketResult/>",
		`<?xml version="1.0" encoding="ISO-8859-1"?><ListBucketResult/>`,
		`<Error><Code>NoSuchBucket</Code></Error>`,
		``,
	}
}()

// TestDecodeListV2Odd: documents outside what servers usually send decode
// as the SDK decodes them, or fail as it fails, whether or not the fast
// decoder hands them over.
func TestDecodeListV2Odd(t *testing.T) {
	for _, doc := range oddListDocs {
		assertSameDecoding(t, doc, 200)
	}
	// Errors go through the SDK's error decoding.
	assertSameDecoding(t, `<Error><Code>NoSuchBucket</Code><Message>no</Message></Error>`, 404)
	assertSameDecoding(t, `<Error><Code>AccessDenied</Code><Message>no</Message></Error>`, 403)
}
