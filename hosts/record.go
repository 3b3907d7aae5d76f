package hosts

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Record is a host's record: what it replicates and how each tenant
// stands, so that `ls` and the terminal UI of any host show every
// tenant's state and lag without listing every tenant's objects. It is
// written beside the heartbeat, gzipped, when it changes and at most once
// per BeatEvery; its short JSON keys keep it under 100 bytes a tenant.
type Record struct {
	Host    string         `json:"host"`
	Machine string         `json:"machine,omitempty"`
	PID     int            `json:"pid,omitempty"`
	Version string         `json:"version,omitempty"`
	Started time.Time      `json:"started"`
	At      time.Time      `json:"at"`
	Tenants []TenantRecord `json:"tenants"`
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
}

// maxRecordBytes bounds what is read of an untrusted record, compressed
// and not.
const (
	maxRecordBytes   = 16 << 20
	maxRecordExpands = 256 << 20
)

// Publish writes this host's record.
func (b *Beater) Publish(ctx context.Context, r *Record) error {
	r.Host, r.Machine, r.PID, r.Started = b.opt.Host, b.machine, os.Getpid(), b.started.UTC()
	if r.Version == "" {
		r.Version = b.opt.Version
	}
	body, err := EncodeRecord(r)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, b.opt.Requests)
	defer cancel()
	_, err = b.opt.API.PutObject(rctx, &s3.PutObjectInput{
		Bucket: aws.String(b.opt.Bucket), Key: aws.String(RecordKey(b.opt.Host)),
		Body: bytes.NewReader(body), ContentType: aws.String("application/gzip"),
	})
	if err != nil {
		return fmt.Errorf("write host record %s: %w", RecordKey(b.opt.Host), err)
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

// ReadRecord reads a host's record; nil when it has none.
func ReadRecord(ctx context.Context, api interface {
	GetObject(ctx context.Context, params *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}, bucket, host string) (*Record, error) {
	out, err := api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(RecordKey(host))})
	if err != nil {
		if IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read %s: %w", RecordKey(host), err)
	}
	defer out.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(out.Body, maxRecordBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", RecordKey(host), err)
	}
	if len(raw) > maxRecordBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a host record", RecordKey(host), maxRecordBytes)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%s is not gzip: %w", RecordKey(host), err)
	}
	var r Record
	dec := json.NewDecoder(io.LimitReader(zr, maxRecordExpands))
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("decode %s: %w", RecordKey(host), err)
	}
	if r.Host != host {
		return nil, fmt.Errorf("%s names host %s", RecordKey(host), printable(r.Host))
	}
	return &r, nil
}
