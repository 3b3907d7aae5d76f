package s3browse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// maxLeaseBytes bounds how much of lock.json is read: a real lease is about
// 100 bytes, and the file is untrusted.
const maxLeaseBytes = 64 << 10

// Lease is the content of a tenant's lock.json, the lease Litestream's
// s3.Leaser writes (litestream.Lease). Owner is untrusted text: print it
// with Printable.
type Lease struct {
	Owner      string    `json:"owner"`
	Generation int64     `json:"generation"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	// ModifiedAt is the LastModified of lock.json: its last renewal.
	ModifiedAt time.Time `json:"modified_at,omitzero"`
	Size       int64     `json:"size"`
	// Error says why the lease could not be read or decoded; the other
	// fields are then what is known from the listing.
	Error string `json:"error,omitempty"`
}

// Expired reports whether the lease had expired at now. A lease that could
// not be decoded has no expiry and counts as expired.
func (l *Lease) Expired(now time.Time) bool {
	return l.ExpiresAt.IsZero() || !now.Before(l.ExpiresAt)
}

// ReadLease reads a tenant's lock.json: nil when there is none, and a
// Lease with Error set when it cannot be read or decoded. Only a cancelled
// context is returned as an error.
func ReadLease(ctx context.Context, api API, conn Conn, tenant string) (*Lease, error) {
	if err := CheckName(tenant); err != nil {
		return nil, err
	}
	return readLease(ctx, api, conn, conn.TenantPath(tenant)+"/"+leaseFile, object{})
}

// readLease fetches lock.json at key. It returns nil when the object is gone
// (released between the listing and the GET), and a Lease with Error set
// when it cannot be read or decoded: a bad lease must not hide the rest of
// the report. Only a cancelled context is returned as an error.
func readLease(ctx context.Context, api API, conn Conn, key string, listed object) (*Lease, error) {
	l := &Lease{ModifiedAt: listed.modified, Size: listed.size}
	out, err := api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(conn.Bucket), Key: aws.String(key)})
	if err != nil {
		var noKey *types.NoSuchKey
		var resp *awshttp.ResponseError
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("read %s: %w", key, ctx.Err())
		case errors.As(err, &noKey), errors.As(err, &resp) && resp.HTTPStatusCode() == http.StatusNotFound:
			return nil, nil
		}
		l.Error = fmt.Sprintf("read %s: %v", key, Explain(err, conn))
		return l, nil
	}
	defer out.Body.Close()
	if out.LastModified != nil {
		l.ModifiedAt = out.LastModified.UTC()
	}
	if out.ContentLength != nil {
		l.Size = *out.ContentLength
	}
	body, err := io.ReadAll(io.LimitReader(out.Body, maxLeaseBytes+1))
	switch {
	case err != nil:
		if ctx.Err() != nil {
			return nil, fmt.Errorf("read %s: %w", key, ctx.Err())
		}
		l.Error = fmt.Sprintf("read %s: %v", key, err)
		return l, nil
	case len(body) > maxLeaseBytes:
		l.Error = fmt.Sprintf("%s is larger than %d bytes: not a Litestream lease", leaseFile, maxLeaseBytes)
		return l, nil
	}
	var doc struct {
		Generation int64     `json:"generation"`
		ExpiresAt  time.Time `json:"expires_at"`
		Owner      string    `json:"owner"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		l.Error = fmt.Sprintf("decode %s: %v", leaseFile, err)
		return l, nil
	}
	l.Owner, l.Generation, l.ExpiresAt = doc.Owner, doc.Generation, doc.ExpiresAt.UTC()
	return l, nil
}
