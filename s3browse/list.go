package s3browse

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// pageSize is the MaxKeys of every listing: S3's own maximum, so that 10,000
// tenants of ~20 objects cost about 200 requests.
const pageSize = 1000

// object is one listed key with what the inventory needs of it.
type object struct {
	key      string
	size     int64
	modified time.Time // UTC
}

// listVisitor receives a listing one entry at a time, so that callers can
// aggregate without holding pages.
type listVisitor struct {
	object func(object)
	prefix func(string) // CommonPrefixes; only with a delimiter
}

// list walks every page of a ListObjectsV2 of prefix, following
// continuation tokens. Keys are asked URL-encoded and decoded here, because
// XML 1.0 cannot carry control characters and servers otherwise replace
// them; a server that ignores the request sends them raw, which works too.
// The error is wrapped with Explain.
func list(ctx context.Context, api API, conn Conn, prefix, delimiter string, v listVisitor) error {
	in := &s3.ListObjectsV2Input{
		Bucket:       aws.String(conn.Bucket),
		Prefix:       aws.String(prefix),
		MaxKeys:      aws.Int32(pageSize),
		EncodingType: types.EncodingTypeUrl,
	}
	if delimiter != "" {
		in.Delimiter = aws.String(delimiter)
	}
	var lastToken, lastName string
	for page := 1; ; page++ {
		out, err := api.ListObjectsV2(ctx, in)
		if err != nil {
			return fmt.Errorf("list %s (page %d): %w", Printable(prefix), page, Explain(err, conn))
		}
		encoded := out.EncodingType == types.EncodingTypeUrl
		for _, o := range out.Contents {
			key := decodeKey(aws.ToString(o.Key), encoded)
			lastName = max(lastName, key)
			if v.object != nil {
				v.object(object{key: key, size: aws.ToInt64(o.Size), modified: aws.ToTime(o.LastModified).UTC()})
			}
		}
		for _, p := range out.CommonPrefixes {
			name := decodeKey(aws.ToString(p.Prefix), encoded)
			lastName = max(lastName, name)
			if v.prefix != nil {
				v.prefix(name)
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			return nil
		}
		// Continue after a truncated page. Servers in the ListObjects v1
		// style send no token: StartAfter the last name seen then. A token
		// or position that does not move would loop forever.
		in = copyInput(in)
		if token := aws.ToString(out.NextContinuationToken); token != "" {
			if token == lastToken {
				return fmt.Errorf("list %s (page %d): the server repeated continuation token %q", Printable(prefix), page, token)
			}
			lastToken = token
			in.ContinuationToken = aws.String(token)
			in.StartAfter = nil
		} else {
			if lastName == "" || lastName == aws.ToString(in.StartAfter) {
				return fmt.Errorf("list %s (page %d): truncated page without a continuation token", Printable(prefix), page)
			}
			in.ContinuationToken = nil
			in.StartAfter = aws.String(lastName)
		}
	}
}

func copyInput(in *s3.ListObjectsV2Input) *s3.ListObjectsV2Input {
	c := *in
	return &c
}

// decodeKey undoes the encoding-type=url of a listing. A key that does not
// decode is kept as sent: it then fails the name checks rather than the
// listing.
func decodeKey(s string, encoded bool) string {
	if !encoded {
		return s
	}
	d, err := url.QueryUnescape(s)
	if err != nil {
		return s
	}
	return d
}
