package s3browse

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/untrusted"
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
// The error is wrapped with s3conn.Explain.
func list(ctx context.Context, api s3conn.API, conn s3conn.Conn, prefix, delimiter string, v listVisitor) error {
	p := newPager(api, conn, listRange{prefix: prefix, delimiter: delimiter})
	for {
		more, err := p.next(ctx, v)
		if err != nil || !more {
			return err
		}
	}
}

// listRange is the part of a listing a pager walks: the keys (and common
// prefixes) under prefix, from `from` (inclusive) to `until` (exclusive).
// Empty bounds are open. Entries outside the bounds are dropped even when
// the server sends them, so ranges that tile the key space never count an
// entry twice, whatever the server does with StartAfter.
type listRange struct {
	prefix, delimiter string
	from, until       string
	// startAfter is sent as StartAfter with the first request: at most
	// from, and close below it so that little is listed only to be dropped.
	startAfter string
	// pageSize is the MaxKeys of a full page; 0 means pageSize.
	pageSize int32
}

// pager walks the pages of one listRange. The MaxKeys of its next page can
// be changed between pages.
type pager struct {
	api  s3conn.API
	conn s3conn.Conn
	r    listRange
	in   *s3.ListObjectsV2Input
	page int
	// last is the greatest name the server sent, kept or not: where the
	// listing is, and where it continues without a token.
	last      string
	lastToken string
	done      bool
	// replaced says a page that was not URL-encoded held a name with
	// U+FFFD: likely a stand-in for bytes XML cannot carry, so that the
	// name is not the key the server sorts by (see Scan).
	replaced bool
}

func newPager(api s3conn.API, conn s3conn.Conn, r listRange) *pager {
	if r.pageSize <= 0 {
		r.pageSize = pageSize
	}
	in := &s3.ListObjectsV2Input{
		Bucket:       aws.String(conn.Bucket),
		Prefix:       aws.String(r.prefix),
		MaxKeys:      aws.Int32(r.pageSize),
		EncodingType: types.EncodingTypeUrl,
	}
	if r.delimiter != "" {
		in.Delimiter = aws.String(r.delimiter)
	}
	if r.startAfter != "" {
		in.StartAfter = aws.String(r.startAfter)
	}
	return &pager{api: api, conn: conn, r: r, in: in}
}

// setMaxKeys sets the MaxKeys of the next request, at most a full page.
func (p *pager) setMaxKeys(n int32) {
	n = min(max(n, 1), p.r.pageSize)
	if aws.ToInt32(p.in.MaxKeys) != n {
		p.in = copyInput(p.in)
		p.in.MaxKeys = aws.Int32(n)
	}
}

// next requests one page and passes its entries within the range to v. It
// reports whether more pages follow.
func (p *pager) next(ctx context.Context, v listVisitor) (bool, error) {
	if p.done {
		return false, nil
	}
	p.page++
	prefix := aws.ToString(p.in.Prefix)
	out, err := p.api.ListObjectsV2(ctx, p.in, fastListDecoding)
	if errors.Is(err, errPageTooLarge) {
		p.done = true
		return false, s3conn.Explained(s3conn.FailureOther, err, fmt.Sprintf(
			"list %s (page %d): S3%s answered with over %d MiB for one page of at most %d keys (under 4 MiB): refused; check that the endpoint is an S3 server",
			untrusted.Printable(prefix), p.page, s3conn.At(p.conn), MaxListPageBytes>>20, aws.ToInt32(p.in.MaxKeys)))
	}
	if err != nil {
		p.done = true
		return false, fmt.Errorf("list %s (page %d): %w", untrusted.Printable(prefix), p.page, s3conn.ExplainKey(err, p.conn, prefix))
	}
	encoded := out.EncodingType == types.EncodingTypeUrl
	past := false // an entry at or after r.until was sent
	for _, o := range out.Contents {
		key := decodeKey(aws.ToString(o.Key), encoded)
		p.last = max(p.last, key)
		p.replaced = p.replaced || (!encoded && strings.ContainsRune(key, utf8.RuneError))
		if !p.r.within(key, &past) {
			continue
		}
		if v.object != nil {
			v.object(object{key: key, size: aws.ToInt64(o.Size), modified: aws.ToTime(o.LastModified).UTC()})
		}
	}
	for _, cp := range out.CommonPrefixes {
		name := decodeKey(aws.ToString(cp.Prefix), encoded)
		p.last = max(p.last, name)
		p.replaced = p.replaced || (!encoded && strings.ContainsRune(name, utf8.RuneError))
		if !p.r.within(name, &past) {
			continue
		}
		if v.prefix != nil {
			v.prefix(name)
		}
	}
	if !aws.ToBool(out.IsTruncated) || past {
		p.done = true
		return false, nil
	}
	// Continue after a truncated page. Servers in the ListObjects v1
	// style send no token: StartAfter the last name seen then. A token
	// or position that does not move would loop forever.
	p.in = copyInput(p.in)
	if token := aws.ToString(out.NextContinuationToken); token != "" {
		if token == p.lastToken {
			p.done = true
			return false, fmt.Errorf("list %s (page %d): the server repeated continuation token %q", untrusted.Printable(prefix), p.page, token)
		}
		p.lastToken = token
		p.in.ContinuationToken = aws.String(token)
		p.in.StartAfter = nil
	} else {
		if p.last == "" || p.last == aws.ToString(p.in.StartAfter) {
			p.done = true
			return false, fmt.Errorf("list %s (page %d): truncated page without a continuation token", untrusted.Printable(prefix), p.page)
		}
		p.in.ContinuationToken = nil
		p.in.StartAfter = aws.String(p.last)
	}
	return true, nil
}

// within reports whether name lies in the range, and sets *past when it
// lies at or after its end: nothing further in the listing is wanted then.
func (r *listRange) within(name string, past *bool) bool {
	if r.until != "" && name >= r.until {
		*past = true
		return false
	}
	return name >= r.from
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
