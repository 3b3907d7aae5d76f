package s3browse

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// memS3 is an in-memory ListObjectsV2 with S3's semantics, for tests that
// need exact control: keys are any bytes, sorted in byte order; Prefix,
// Delimiter (CommonPrefixes at or before the marker are skipped, as are
// the keys under them), StartAfter, ContinuationToken (opaque to the
// client), MaxKeys (capped at 1000) and EncodingType=url. It records every
// request and can fail or stall chosen ones.
type memS3 struct {
	keys  []string // sorted, unique
	sizes map[string]int64
	// noEncoding makes it ignore EncodingType, as gofakes3 and versitygw
	// do, and send what XML 1.0 cannot carry as U+FFFD, as they do.
	noEncoding bool
	delay      time.Duration
	// fail, when set, is asked about each request before it is served.
	fail func(in *s3.ListObjectsV2Input) error

	mu       sync.Mutex
	requests []s3.ListObjectsV2Input
	inFlight int
	peak     int
}

func newMemS3(keys map[string]int64) *memS3 {
	m := &memS3{sizes: keys}
	for k := range keys {
		m.keys = append(m.keys, k)
	}
	slices.Sort(m.keys)
	return m
}

// modTime is the LastModified of every memS3 object.
var memModTime = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

const memTokenPrefix = "opaque:"

func (m *memS3) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	m.mu.Lock()
	m.requests = append(m.requests, *in)
	m.inFlight++
	m.peak = max(m.peak, m.inFlight)
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.inFlight--
		m.mu.Unlock()
	}()
	if m.delay > 0 {
		select {
		case <-time.After(m.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if m.fail != nil {
		if err := m.fail(in); err != nil {
			return nil, err
		}
	}
	prefix, delim := aws.ToString(in.Prefix), aws.ToString(in.Delimiter)
	marker := aws.ToString(in.StartAfter)
	if tok := aws.ToString(in.ContinuationToken); tok != "" {
		t, ok := strings.CutPrefix(tok, memTokenPrefix)
		if !ok {
			return nil, errors.New("memS3: bad continuation token")
		}
		marker = t
	}
	maxKeys := aws.ToInt32(in.MaxKeys)
	if in.MaxKeys == nil || maxKeys > 1000 {
		maxKeys = 1000
	}
	encode := in.EncodingType == types.EncodingTypeUrl && !m.noEncoding
	enc := func(s string) *string {
		if encode {
			s = url.QueryEscape(s)
		} else if m.noEncoding {
			s = xmlReplace(s)
		}
		return aws.String(s)
	}
	out := &s3.ListObjectsV2Output{IsTruncated: aws.Bool(false)}
	if encode {
		out.EncodingType = types.EncodingTypeUrl
	}
	i, _ := slices.BinarySearch(m.keys, prefix)
	var last string
	n := int32(0)
	for ; i < len(m.keys) && strings.HasPrefix(m.keys[i], prefix); i++ {
		key := m.keys[i]
		entry, isPrefix := key, false
		if delim != "" {
			if j := strings.Index(key[len(prefix):], delim); j >= 0 {
				entry, isPrefix = key[:len(prefix)+j+len(delim)], true
			}
		}
		if entry <= marker || (isPrefix && entry == last) {
			continue
		}
		if n == maxKeys {
			out.IsTruncated = aws.Bool(true)
			out.NextContinuationToken = aws.String(memTokenPrefix + last)
			break
		}
		if isPrefix {
			out.CommonPrefixes = append(out.CommonPrefixes, types.CommonPrefix{Prefix: enc(entry)})
		} else {
			out.Contents = append(out.Contents, types.Object{
				Key: enc(key), Size: aws.Int64(m.sizes[key]), LastModified: aws.Time(memModTime),
			})
		}
		last = entry
		n++
	}
	out.KeyCount = aws.Int32(n)
	return out, nil
}

func (m *memS3) GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	return nil, errors.New("memS3 serves listings only")
}

// listings returns the requests made so far.
func (m *memS3) listings() []s3.ListObjectsV2Input {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.requests)
}

// xmlReplace replaces what XML 1.0 cannot carry with U+FFFD, as Go's
// encoding/xml does when a server writes a listing.
func xmlReplace(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1, r < 0x20 && r != '\t' && r != '\n' && r != '\r', r == 0xFFFE, r == 0xFFFF:
			b.WriteRune(utf8.RuneError)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
