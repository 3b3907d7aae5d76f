package hosts

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litefleet/litefleet/layout"
)

// Record is a host's record: what it replicates and how each tenant
// stands, so that `ls` and the terminal UI of any host show every
// tenant's state and lag without listing every tenant's objects. It is
// written beside the heartbeat, gzipped, when it changes and at most once
// per BeatEvery; its short JSON keys keep it under 100 bytes a tenant.
//
// A large fleet's record is not rewritten whole for a few changes: a delta
// record (layout.DeltaKey) beside it carries only the entries that changed since
// (Base names the record it applies to), and the record is written whole
// again when the delta grows. ReadRecord applies the delta; a reader that
// knows no deltas reads the record alone, older but whole.
type Record struct {
	Host    string         `json:"host"`
	Machine string         `json:"machine,omitempty"`
	PID     int            `json:"pid,omitempty"`
	Version string         `json:"version,omitempty"`
	Started time.Time      `json:"started"`
	At      time.Time      `json:"at"`
	Tenants []TenantRecord `json:"tenants"`
	// Base is set in a delta record only: the At of the record it applies
	// to. Its Tenants replace or add entries (by prefix and name), and an
	// entry with Gone removes one.
	Base time.Time `json:"base,omitzero"`
	// Delta says ReadRecord applied a delta record: At is the delta's.
	Delta bool `json:"-"`
}

// RecordPrefix is how a record names the prefix its tenants sit under
// (a Conn's TenantsPrefix, "" for the bucket's root): the usual
// "databases/" is left out to keep records small, so the root is "/".
func RecordPrefix(tenantsPrefix string) string {
	switch tenantsPrefix {
	case "databases/":
		return ""
	case "":
		return "/"
	}
	return strings.TrimSuffix(tenantsPrefix, "/")
}

// TenantRecord is one tenant in a host record. Names read back from S3 are
// untrusted: validate them before use.
type TenantRecord struct {
	Name   string `json:"n"`
	Prefix string `json:"p,omitempty"` // see RecordPrefix
	State  string `json:"s"`
	Reason string `json:"e,omitempty"`
	// Local and Replicated are TXIDs; Lag is in milliseconds; LastSync and
	// Since are Unix seconds.
	Local      uint64 `json:"l,omitempty"`
	Replicated uint64 `json:"r,omitempty"`
	LagMillis  int64  `json:"g,omitempty"`
	LastSync   int64  `json:"y,omitempty"`
	Since      int64  `json:"c,omitempty"`
	// Checksum is the LTX checksum of the whole database at Replicated
	// (16 hex digits, as ltx.Checksum prints), when the host knows it:
	// what `litefleet verify` compares a restore with.
	Checksum string `json:"k,omitempty"`
	// VerifiedAt (Unix seconds) and Verdict are the host's last
	// verification of the tenant (replicate -verify-every): verify's
	// verdict word.
	VerifiedAt int64  `json:"v,omitempty"`
	Verdict    string `json:"w,omitempty"`
	// Gone, in a delta record: the tenant left the host's record.
	Gone bool `json:"x,omitempty"`
}

// Limits on a host record read back from S3, checked while it is read
// (the record is untrusted: anyone who may write .litefleet/ can put
// anything there). A real record of 100,000 tenants is 5.1 MiB gzipped and
// 15.9 MiB of JSON (TestRecordLimitsFitLargeFleet; each tenant's database
// checksum is 8 incompressible bytes of it), so each limit is four to five
// times what such a fleet needs; beyond them a record is refused whole,
// before it can cost more memory than the view it feeds.
const (
	// MaxRecordBytes bounds the record as stored, gzipped.
	MaxRecordBytes = 24 << 20
	// MaxRecordExpanded bounds its JSON, once gunzipped: a few megabytes of
	// gzip can expand to gigabytes.
	MaxRecordExpanded = 64 << 20
	// MaxRecordTenants bounds its entries.
	MaxRecordTenants = 500_000
	// maxRecordValue bounds one value of the record (a tenant's entry, the
	// version): what the JSON decoder holds at once. A real entry is under
	// 200 bytes; a reason is one line.
	maxRecordValue = 1 << 20
)

// Publish writes this host's record; with r.Base set, its delta record.
func (b *Beater) Publish(ctx context.Context, r *Record) error {
	r.Host, r.Machine, r.PID, r.Started = b.opt.Host, b.machine, os.Getpid(), b.started.UTC()
	if r.Version == "" {
		r.Version = b.opt.Version
	}
	key := layout.RecordKey(b.opt.Host)
	if !r.Base.IsZero() {
		key = layout.DeltaKey(b.opt.Host)
	}
	body, err := EncodeRecord(r)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, b.opt.Requests)
	defer cancel()
	out, err := b.opt.API.PutObject(rctx, &s3.PutObjectInput{
		Bucket: aws.String(b.opt.Bucket), Key: aws.String(key),
		Body: bytes.NewReader(body), ContentType: aws.String("application/gzip"),
	})
	if err != nil {
		return fmt.Errorf("write host record %s: %w", key, err)
	}
	if r.Base.IsZero() {
		// The record itself, not a delta: what dropStaleRecord may delete.
		b.mu.Lock()
		b.recordETag, b.recordDropped = aws.ToString(out.ETag), false
		b.mu.Unlock()
	}
	return nil
}

// EncodeRecord is a record as it is stored: gzipped JSON.
func EncodeRecord(r *Record) ([]byte, error) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err := json.NewEncoder(zw).Encode(r); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// RecordError says a host record was read but refused: over a limit, or
// not a host record. The record is ignored as a whole; its host's tenants
// are shown from what S3 holds of them.
type RecordError struct {
	Host string
	Why  string // "is over 64 MiB uncompressed", "is not gzip: ..."
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("host record of %s %s: ignored, its tenants are shown from their S3 prefixes; delete %s if host %s does not write it, and check who may write .litefleet/",
		printable(e.Host), e.Why, layout.RecordKey(e.Host), printable(e.Host))
}

// ReadRecord reads a host's record, with its delta record applied when
// there is one for it; nil when it has none. A record (or delta) over a
// limit (MaxRecordBytes, MaxRecordExpanded, MaxRecordTenants) or not a
// record is a *RecordError. The limits are checked as the record streams
// in: its announced length, its stored bytes as they arrive, then their
// expansion, before any tenant is decoded (decodeRecord).
func ReadRecord(ctx context.Context, api Getter, bucket, host string) (*Record, error) {
	return readRecord(ctx, api, bucket, host, true)
}

// ReadListed is ReadRecord for a host as a listing (List) showed it: its
// delta record is read only when the listing showed one.
func ReadListed(ctx context.Context, api Getter, bucket string, h HostInfo) (*Record, error) {
	return readRecord(ctx, api, bucket, h.Name, h.HasDelta)
}

func readRecord(ctx context.Context, api Getter, bucket, host string, withDelta bool) (*Record, error) {
	for attempt := 0; ; attempt++ {
		full, err := readRecordKey(ctx, api, bucket, host, layout.RecordKey(host))
		if err != nil || full == nil || !withDelta {
			return full, err
		}
		delta, err := readRecordKey(ctx, api, bucket, host, layout.DeltaKey(host))
		var refused *RecordError
		switch {
		case errors.As(err, &refused):
			// The record stands alone, older: the delta is refused, as a
			// record would be.
			return full, nil
		case err != nil:
			return nil, err
		case delta == nil || delta.Base.IsZero() || !delta.At.After(full.At):
			return full, nil // none, or older than the record: it is in it
		case delta.Base.Equal(full.At):
			return applyDelta(full, delta, host)
		case attempt == 0:
			// A newer record was written after this one was read: read
			// it again, once.
			continue
		}
		return full, nil
	}
}

func readRecordKey(ctx context.Context, api Getter, bucket, host, key string) (*Record, error) {
	out, err := api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		if IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer out.Body.Close()
	n := aws.ToInt64(out.ContentLength)
	if n > MaxRecordBytes {
		return nil, &RecordError{Host: host, Why: fmt.Sprintf("is %s gzipped, over %s", mib(n), mib(MaxRecordBytes))}
	}
	return decodeRecord(out.Body, n, host)
}

// applyDelta returns full with delta's entries in place of, or beside,
// its own (by prefix and name), and its Gone entries removed. The result
// is bounded as a record is (MaxRecordTenants).
func applyDelta(full, delta *Record, host string) (*Record, error) {
	type key struct{ prefix, name string }
	at := make(map[key]int, len(full.Tenants))
	for i, t := range full.Tenants {
		at[key{t.Prefix, t.Name}] = i
	}
	out := *full
	out.Tenants = slices.Clone(full.Tenants)
	gone := false
	for _, d := range delta.Tenants {
		k := key{d.Prefix, d.Name}
		i, ok := at[k]
		switch {
		case ok:
			out.Tenants[i] = d
			gone = gone || d.Gone
		case !d.Gone:
			if len(out.Tenants) >= MaxRecordTenants {
				return nil, &RecordError{Host: host, Why: fmt.Sprintf("lists over %d tenants with its delta", MaxRecordTenants)}
			}
			at[k] = len(out.Tenants)
			out.Tenants = append(out.Tenants, d)
		}
	}
	if gone {
		out.Tenants = slices.DeleteFunc(out.Tenants, func(t TenantRecord) bool { return t.Gone })
	}
	out.At, out.Delta = delta.At, true
	return &out, nil
}

// decodeRecord reads a stored record from body (gzipped JSON), checking
// every limit as it goes. sizeHint is the body's announced length (0 when
// unknown). The stored bytes are kept (at most MaxRecordBytes) and read
// twice: once to measure what they expand to and how many entries they
// hold, keeping nothing, then, only when that is within the limits, to
// decode them one tenant at a time. A refused record so costs its
// compressed bytes, not the tenants decoded before a limit is met.
func decodeRecord(body io.Reader, sizeHint int64, host string) (*Record, error) {
	refuse := func(why string) error { return &RecordError{Host: host, Why: why} }
	stored := &capReader{r: body, left: MaxRecordBytes}
	var buf bytes.Buffer
	if sizeHint > 0 && sizeHint <= MaxRecordBytes {
		buf.Grow(int(sizeHint) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(stored)
	switch {
	case stored.over():
		return nil, refuse("is over " + mib(MaxRecordBytes) + " gzipped")
	case err != nil:
		// The body broke off (the network, S3): not the record's fault.
		return nil, fmt.Errorf("read %s: %w", layout.RecordKey(host), err)
	}
	raw := buf.Bytes()
	entries, why := measureRecord(raw)
	if why != "" {
		return nil, refuse(why)
	}

	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, refuse("is not gzip (" + err.Error() + ")")
	}
	// The limits again, now on what is kept: the measure counted objects,
	// this counts tenants, and bounds each value the decoder holds.
	expanded := &capReader{r: zr, left: MaxRecordExpanded, window: maxRecordValue}
	// Sized by the count: no copy of a growing slice of 100,000 tenants.
	r := Record{Tenants: make([]TenantRecord, 0, entries)}
	err = decodeRecordJSON(json.NewDecoder(expanded), expanded, &r)
	switch {
	case expanded.over():
		return nil, refuse("is over " + mib(MaxRecordExpanded) + " uncompressed")
	case expanded.overWindow():
		return nil, refuse("holds a value over " + mib(maxRecordValue) + " (a tenant's entry is under 1 KiB)")
	case errors.Is(err, errTooManyTenants):
		return nil, refuse(fmt.Sprintf("lists over %d tenants", MaxRecordTenants))
	case err != nil:
		return nil, refuse("is not a host record (" + printable(err.Error()) + ")")
	case r.Host != host:
		return nil, refuse("names host " + printable(r.Host))
	}
	return &r, nil
}

// measureRecord gunzips a stored record and reads its JSON once without
// keeping any of it. It counts its entries (objects two levels down, where
// tenant entries are) and says why it is refused ("" when it is not): over
// MaxRecordExpanded, more entries than MaxRecordTenants, or not gzip.
func measureRecord(raw []byte) (entries int, why string) {
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return 0, "is not gzip (" + err.Error() + ")"
	}
	cr := &capReader{r: zr, left: MaxRecordExpanded}
	var sc shapeScanner
	chunk := make([]byte, 32<<10)
	for {
		n, err := cr.Read(chunk)
		sc.scan(chunk[:n])
		switch {
		case sc.entries > MaxRecordTenants:
			return 0, fmt.Sprintf("lists over %d tenants", MaxRecordTenants)
		case cr.over():
			return 0, "is over " + mib(MaxRecordExpanded) + " uncompressed"
		case err == io.EOF:
			return sc.entries, ""
		case err != nil:
			return 0, "is not gzip (" + err.Error() + ")"
		}
	}
}

// shapeScanner counts the objects that open three levels deep in JSON
// text ({"tenants":[{...}]}), skipping strings; it is not a validator (the
// decoder that follows is), only a cheap count to refuse a record before
// decoding it.
type shapeScanner struct {
	depth    int
	inString bool
	escaped  bool
	entries  int
}

func (s *shapeScanner) scan(b []byte) {
	for _, c := range b {
		if s.inString {
			switch {
			case s.escaped:
				s.escaped = false
			case c == '\\':
				s.escaped = true
			case c == '"':
				s.inString = false
			}
			continue
		}
		switch c {
		case '"':
			s.inString = true
		case '{', '[':
			s.depth++
			if c == '{' && s.depth == 3 {
				s.entries++
			}
		case '}', ']':
			s.depth--
		}
	}
}

var errTooManyTenants = errors.New("too many tenants")

// decodeRecordJSON decodes a Record from dec one value at a time, resetting
// cr's window before each: encoding/json's Decode would hold the whole
// document in its buffer, and then every tenant beside it. Keys match
// struct tags case-insensitively, as json.Unmarshal matches them.
func decodeRecordJSON(dec *json.Decoder, cr *capReader, r *Record) error {
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	for dec.More() {
		cr.resetWindow()
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		cr.resetWindow()
		var dst any
		switch {
		case strings.EqualFold(key, "tenants"):
			if err := decodeTenants(dec, cr, r); err != nil {
				return err
			}
			continue
		case strings.EqualFold(key, "host"):
			dst = &r.Host
		case strings.EqualFold(key, "machine"):
			dst = &r.Machine
		case strings.EqualFold(key, "pid"):
			dst = &r.PID
		case strings.EqualFold(key, "version"):
			dst = &r.Version
		case strings.EqualFold(key, "started"):
			dst = &r.Started
		case strings.EqualFold(key, "at"):
			dst = &r.At
		case strings.EqualFold(key, "base"):
			dst = &r.Base
		default:
			dst = &json.RawMessage{} // a newer writer's field: skipped, within the window
		}
		if err := dec.Decode(dst); err != nil {
			return err
		}
	}
	return expectDelim(dec, '}')
}

// decodeTenants decodes the tenants array (or null), one entry at a time.
func decodeTenants(dec *json.Decoder, cr *capReader, r *Record) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		r.Tenants = nil
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("tenants is %v, not an array", tok)
	}
	r.Tenants = r.Tenants[:0] // a second "tenants" key replaces the first, as in json.Unmarshal
	for dec.More() {
		if len(r.Tenants) >= MaxRecordTenants {
			return errTooManyTenants
		}
		cr.resetWindow()
		var t TenantRecord
		if err := dec.Decode(&t); err != nil {
			return err
		}
		r.Tenants = append(r.Tenants, t)
	}
	return expectDelim(dec, ']')
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("found %v where %v was expected", tok, want)
	}
	return nil
}

// capReader reads at most left bytes of r, and at most window bytes
// between two calls of resetWindow (when window > 0); past either it fails
// with errOverLimit, and remembers which limit it met.
type capReader struct {
	r            io.Reader
	left         int64
	window       int64
	inWindow     int64
	tripped      bool
	trippedValue bool
}

var errOverLimit = errors.New("over the size limit")

func (c *capReader) Read(p []byte) (int, error) {
	if c.tripped || c.trippedValue {
		return 0, errOverLimit
	}
	// One byte more than allowed tells "exactly at the limit" from "over".
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	c.inWindow += int64(n)
	if c.left < 0 {
		c.tripped = true
		return n + int(c.left), errOverLimit
	}
	if c.window > 0 && c.inWindow > c.window {
		c.trippedValue = true
		return n, errOverLimit
	}
	return n, err
}

func (c *capReader) resetWindow()     { c.inWindow = 0 }
func (c *capReader) over() bool       { return c.tripped }
func (c *capReader) overWindow() bool { return c.trippedValue }

// mib writes a byte count in MiB (or KiB below one), as the limits are
// documented: 64 MiB, 10.2 MiB, 1536 MiB.
func mib(n int64) string {
	unit, v := "MiB", float64(n)/(1<<20)
	if n < 1<<20 {
		unit, v = "KiB", float64(n)/(1<<10)
	}
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d %s", int64(v), unit)
	}
	return fmt.Sprintf("%.1f %s", v, unit)
}
