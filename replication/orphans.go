package replication

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Abandoned multipart uploads.
//
// A failed upload is aborted at once (upload.go), but a process killed
// mid-upload, or an abort that failed, leaves parts in the bucket that
// cost storage until a lifecycle rule removes them (1.8 GB after a day of
// a big tenant failing). They are aborted by the host that holds the
// tenant's claim, the only one that may upload under its prefix: every
// multipart upload under the prefix that this process is not sending is
// then an earlier instance's or a deposed holder's, and a deposed holder
// can complete nothing (its completion is conditional and past its
// deadline). The rule needs no clock: not the upload's age, which S3's
// clock stamps, but who holds the claim now, and this process's own set of
// uploads in flight. The sweep runs at a tenant's start under its claim
// (one listing of the whole bucket's tenants at the process's first start,
// a fresh one of the tenant's prefix at a takeover) and before the next
// multipart upload of a tenant whose abort failed.

// orphanWindow is how long after an abort the tenant's sweeps go on even
// when one finds nothing: a part cut at its deadline drains from socket
// buffers and proxies at the link's pace, and may land, reviving the
// upload, well after the abort.
const orphanWindow = time.Minute

// noteOrphans says that the tenant's prefix may hold abandoned uploads:
// sweeps run before its next multipart uploads and at its close until one
// finds nothing, orphanWindow after the last abort.
func (c *tenantClient) noteOrphans() {
	c.orphansAt.Store(c.now().UnixNano())
	c.orphansLeft.Store(true)
}

// ownUploads holds the upload IDs this process is sending (created and not
// yet completed or aborted): a sweep never aborts them.
var ownUploads sync.Map

// orphan is a multipart upload found under a tenant's prefix.
type orphan struct {
	key, id   string
	initiated time.Time // S3's clock: logged, never compared
}

// maxOrphanPages bounds a listing of multipart uploads (1,000 a page): a
// bucket of more abandoned uploads is swept over several starts.
const maxOrphanPages = 100

// listOrphans lists the multipart uploads under prefix. Keys are the
// server's answer: only those under prefix are kept.
func listOrphans(ctx context.Context, api objectAPI, bucket, prefix string) ([]orphan, error) {
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket), Prefix: aws.String(prefix)}
	var found []orphan
	for range maxOrphanPages {
		out, err := api.ListMultipartUploads(ctx, in)
		if err != nil {
			return found, fmt.Errorf("list multipart uploads under s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, u := range out.Uploads {
			key, id := aws.ToString(u.Key), aws.ToString(u.UploadId)
			if !strings.HasPrefix(key, prefix) || id == "" {
				continue
			}
			found = append(found, orphan{key: key, id: id, initiated: aws.ToTime(u.Initiated)})
		}
		if !aws.ToBool(out.IsTruncated) || (out.NextKeyMarker == nil && out.NextUploadIdMarker == nil) {
			break
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
	return found, nil
}

// abortOrphans aborts the tenant's multipart uploads that this process is
// not sending: listed (from a census), or listed now when nil. It aborts
// nothing unless the tenant may be written (its claim is this host's and
// the host is not fenced), and returns how many it aborted.
func (c *tenantClient) abortOrphans(ctx context.Context, listed []orphan, fresh bool) (int, error) {
	if c.noSweep {
		return 0, nil
	}
	if _, err := c.gate.writeDeadline(); err != nil {
		return 0, err
	}
	prefix := c.path + "/"
	if fresh {
		lctx, cancel := context.WithTimeout(ctx, abortTimeout)
		var err error
		listed, err = listOrphans(lctx, c.api, c.bucket, prefix)
		cancel()
		if err != nil {
			return 0, err
		}
	}
	n := 0
	for _, o := range listed {
		if !strings.HasPrefix(o.key, prefix) {
			continue
		}
		if _, own := ownUploads.Load(o.id); own {
			continue
		}
		// Checked again for each: a fence that began during the sweep
		// stops it (another host may be taking the tenant).
		if _, err := c.gate.writeDeadline(); err != nil {
			return n, err
		}
		if err := c.abortUpload(ctx, o.key, o.id); err != nil {
			return n, err
		}
		n++
		c.logger.Info("abandoned multipart upload aborted", "db", c.tenant, "key", o.key, "upload_id", o.id, "initiated", o.initiated)
	}
	return n, nil
}

// abortUpload aborts one multipart upload and checks with ListParts that
// it is gone: a part in flight may land after the abort and keep the
// upload alive (S3 documents that an upload may need aborting more than
// once). An abort cannot overwrite anything, so it has its own deadline,
// not the fencing one: a fenced host still cleans up after itself.
func (c *tenantClient) abortUpload(ctx context.Context, key, id string) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	var noUpload *types.NoSuchUpload
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
			case <-actx.Done():
			}
		}
		_, err = c.api.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: aws.String(c.bucket), Key: aws.String(key), UploadId: aws.String(id)})
		if err != nil && !errors.As(err, &noUpload) {
			continue
		}
		_, lerr := c.api.ListParts(actx, &s3.ListPartsInput{Bucket: aws.String(c.bucket), Key: aws.String(key), UploadId: aws.String(id), MaxParts: aws.Int32(1)})
		if lerr == nil {
			err = errors.New("still listed after its abort")
			continue
		}
		// Gone (NoSuchUpload), or keys that may not list parts: the abort
		// was accepted, which is all they can know.
		return nil
	}
	return fmt.Errorf("abort multipart upload %s of s3://%s/%s: %w", id, c.bucket, key, err)
}

// orphanCensus is one listing of the multipart uploads under a bucket's
// tenants, taken at the first tenant's start and handed out tenant by
// tenant: a fleet's start costs one LIST per 1,000 uploads, not one per
// tenant.
type orphanCensus struct {
	mu     sync.Mutex
	listed map[string]bool     // tenants prefixes listed (or tried)
	tenant map[string][]orphan // by tenant path
}

// take returns the uploads under the tenant's path (c.path) from the
// census of its tenants prefix, listing it on first use, once; a listing
// that fails is logged and not tried again: the tenant's own sweeps (a
// takeover, a failed abort) still run.
func (o *orphanCensus) take(ctx context.Context, c *tenantClient, tenantsPrefix string) []orphan {
	if c.noSweep {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.listed == nil {
		o.listed, o.tenant = map[string]bool{}, map[string][]orphan{}
	}
	if !o.listed[tenantsPrefix] {
		o.listed[tenantsPrefix] = true
		lctx, cancel := context.WithTimeout(ctx, checkTimeout)
		all, err := listOrphans(lctx, c.api, c.bucket, tenantsPrefix)
		cancel()
		if err != nil {
			c.logger.Warn("cannot list the bucket's multipart uploads: abandoned ones are aborted only at takeovers and after failed uploads (the policy needs s3:ListBucketMultipartUploads)",
				"bucket", c.bucket, "error", err)
		}
		for _, u := range all {
			name, _, ok := strings.Cut(strings.TrimPrefix(u.key, tenantsPrefix), "/")
			if ok && name != "" {
				o.tenant[tenantsPrefix+name] = append(o.tenant[tenantsPrefix+name], u)
			}
		}
	}
	found := o.tenant[c.path]
	delete(o.tenant, c.path)
	return found
}
