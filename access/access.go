// Package access proves, against the S3 server itself, that a tenant's
// credentials are confined to the tenant's prefix: they may write, list and
// delete under PREFIX/TENANT/, and are refused on a neighbour's prefix. It
// writes only probe objects of its own, and removes every one it wrote.
package access

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/untrusted"
)

// API is the part of the S3 client a probe calls.
type API interface {
	PutObject(ctx context.Context, params *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	DeleteObject(ctx context.Context, params *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	ListObjectsV2(ctx context.Context, params *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
}

var _ API = (*s3.Client)(nil)

// ProbeName starts every probe object's name: a dot, so that no tenant
// (names cannot start with '.') and no Litestream file is ever mistaken
// for one.
const ProbeName = ".litefleet-probe-"

// LoneNeighbour is the neighbour probed for a tenant that has none in its
// bucket: a prefix no tenant of the fleet uses.
const LoneNeighbour = "litefleet-probe-neighbour"

// ProbeTimeout bounds each request.
const ProbeTimeout = 10 * time.Second

// Outcomes of one probe.
const (
	Allowed = "allowed"
	Denied  = "denied"
	Failed  = "error" // neither: the server could not answer the question
)

// Verdicts.
const (
	Confined    = "confined"
	NotConfined = "NOT CONFINED"
	Error       = "error"
)

// Ops are the outcomes of writing, listing and deleting under one prefix.
type Ops struct {
	Write  string `json:"write"`
	List   string `json:"list"`
	Delete string `json:"delete"`
}

// Result is what Check found for one tenant.
type Result struct {
	Tenant    string `json:"tenant"`
	KeyID     string `json:"key_id"` // empty: the AWS chain's
	Own       string `json:"own_prefix"`
	Neighbour string `json:"neighbour_prefix"`
	OwnOps    Ops    `json:"own"`
	NeighOps  Ops    `json:"neighbour"`
	Verdict   string `json:"verdict"`
	// Notes say what went wrong: a refused own prefix, an allowed
	// neighbour, a failed request, a probe object that could not be removed.
	Notes []string `json:"notes,omitempty"`
}

// Check probes tenant's credentials (api, which signs with them) in conn's
// bucket: PUT, list and DELETE under its own prefix, then the same under
// neighbour's, where each must be refused. A probe object written anywhere
// is deleted again, with api or, failing that, with cleanup (the host's
// client; nil for none).
func Check(ctx context.Context, api, cleanup API, conn s3conn.Conn, tenant, neighbour string) Result {
	r := Result{
		Tenant: tenant, KeyID: conn.AccessKeyID,
		Own: conn.URL(tenant), Neighbour: conn.URL(neighbour),
	}
	p := prober{api: api, cleanup: cleanup, conn: conn, r: &r}
	r.OwnOps = p.prefix(ctx, conn.TenantPath(tenant)+"/", true)
	r.NeighOps = p.prefix(ctx, conn.TenantPath(neighbour)+"/", false)

	outcomes := []string{r.OwnOps.Write, r.OwnOps.List, r.OwnOps.Delete, r.NeighOps.Write, r.NeighOps.List, r.NeighOps.Delete}
	switch {
	case r.NeighOps.Write == Allowed || r.NeighOps.List == Allowed || r.NeighOps.Delete == Allowed:
		r.Verdict = NotConfined
	case r.OwnOps != Ops{Allowed, Allowed, Allowed} || slices.Contains(outcomes, Failed) || p.leftBehind:
		r.Verdict = Error
	default:
		r.Verdict = Confined
	}
	return r
}

type prober struct {
	api, cleanup API
	conn         s3conn.Conn
	r            *Result
	leftBehind   bool
}

// prefix probes one prefix: own says whether access is expected.
func (p *prober) prefix(ctx context.Context, prefix string, own bool) Ops {
	key := prefix + ProbeName + randomHex()
	var ops Ops
	var err error

	ops.Write, err = p.outcome(ctx, func(ctx context.Context) error {
		_, err := p.api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(p.conn.Bucket), Key: aws.String(key),
			Body: strings.NewReader("litefleet validate -check-access probe; safe to delete\n")})
		return err
	})
	p.note(own, "write", prefix, ops.Write, err)

	ops.List, err = p.outcome(ctx, func(ctx context.Context) error {
		_, err := p.api.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(p.conn.Bucket), Prefix: aws.String(prefix), MaxKeys: aws.Int32(1)})
		return err
	})
	p.note(own, "list", prefix, ops.List, err)

	// The probe key when one was written (this also removes it), a key
	// that was never written otherwise: deleting a missing key succeeds
	// when allowed and is refused when not.
	ops.Delete, err = p.outcome(ctx, func(ctx context.Context) error {
		_, err := p.api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(p.conn.Bucket), Key: aws.String(key)})
		return err
	})
	p.note(own, "delete", prefix, ops.Delete, err)

	switch {
	case ops.Write == Allowed && ops.Delete != Allowed:
		p.remove(ctx, key)
	case ops.Write == Failed && ops.Delete != Allowed && p.cleanup != nil:
		// The PUT may have landed before its answer was lost.
		p.deleteWith(ctx, p.cleanup, key)
	}
	return ops
}

// outcome runs one request and classifies its answer. An answer that is
// neither yes nor no is asked once more: servers answer a conflict now and
// then when probes of neighbouring prefixes run side by side, and a
// verdict should not rest on one such moment.
func (p *prober) outcome(ctx context.Context, do func(context.Context) error) (string, error) {
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return Failed, err
			case <-time.After(200 * time.Millisecond):
			}
		}
		actx, cancel := context.WithTimeout(ctx, ProbeTimeout)
		err = do(actx)
		cancel()
		switch {
		case err == nil:
			return Allowed, nil
		case s3conn.IsAccessDenied(err):
			return Denied, nil
		}
	}
	return Failed, err
}

func (p *prober) note(own bool, op, prefix, outcome string, err error) {
	where := "s3://" + p.conn.Bucket + "/" + prefix
	switch {
	case outcome == Failed:
		p.r.Notes = append(p.r.Notes, fmt.Sprintf("%s %s: %v", op, untrusted.Printable(where), s3conn.Explain(err, p.conn)))
	case own && outcome == Denied:
		p.r.Notes = append(p.r.Notes, fmt.Sprintf("%s of its own prefix %s was refused: its policy does not give what replication needs", op, untrusted.Printable(where)))
	case !own && outcome == Allowed:
		p.r.Notes = append(p.r.Notes, fmt.Sprintf("%s of the neighbour's prefix %s was ALLOWED: its policy reaches other tenants", op, untrusted.Printable(where)))
	}
}

// remove deletes a probe object the tenant's own DELETE left behind, with
// the host's client, and says so when nothing could remove it.
func (p *prober) remove(ctx context.Context, key string) {
	if p.cleanup != nil && p.deleteWith(ctx, p.cleanup, key) == nil {
		return
	}
	p.leftBehind = true
	p.r.Notes = append(p.r.Notes, fmt.Sprintf("probe object s3://%s/%s could not be deleted: delete it by hand", p.conn.Bucket, untrusted.Printable(key)))
}

func (p *prober) deleteWith(ctx context.Context, api API, key string) error {
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	_, err := api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(p.conn.Bucket), Key: aws.String(key)})
	return err
}

func randomHex() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}
