// Package verify proves that a tenant's replica restores, and to what its
// primary held: the chain of LTX files (every file readable and its
// checksum valid, TXIDs contiguous from a snapshot to the latest, one
// lineage, compactions equal to the level-0 files they replace, nothing
// stray under the prefix), a restore into a temporary file checked with
// PRAGMA integrity_check, the identity of the restored database with the
// checksum its replicating host recorded at that TXID, and the window
// (the oldest restore point old enough, the newest not behind what the
// host says S3 acknowledged).
package verify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/time/rate"

	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/restore"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/tenants"
	"github.com/litefleet/litefleet/untrusted"
)

// The verdicts, one per tenant. Unverifiable comes with a reason.
const (
	Verified      = "verified"
	Mismatch      = "mismatch"
	BrokenChain   = "broken chain"
	Unrestorable  = "unrestorable"
	OutsideWindow = "outside window"
	Unverifiable  = "unverifiable"
)

// Failed reports whether a verdict is a failure: the replica is known to
// be wrong. Unverifiable is not (nothing was found wrong, but the identity
// could not be proved).
func Failed(verdict string) bool {
	switch verdict {
	case Mismatch, BrokenChain, Unrestorable, OutsideWindow:
		return true
	}
	return false
}

// API is what verify asks of S3: the inventory's reads, and the listing
// of multipart uploads (an abandoned one is data under the prefix that no
// listing of objects shows). *s3.Client satisfies it.
type API interface {
	s3conn.API
	ListMultipartUploads(ctx context.Context, params *s3.ListMultipartUploadsInput, optFns ...func(*s3.Options)) (*s3.ListMultipartUploadsOutput, error)
}

var _ API = (*s3.Client)(nil)

// Expected is what the replicating host recorded of the tenant: the TXID
// S3 acknowledged and, when it knows it, the LTX checksum of the whole
// database at that TXID.
type Expected struct {
	Host     string `json:"host"`
	TXID     uint64 `json:"txid"`
	Checksum string `json:"checksum,omitempty"` // 16 hex digits, as ltx.Checksum prints
	// Live says the host's heartbeat is recent: a silent host's record is
	// still what it acknowledged, but it may have been replaced since.
	Live bool `json:"live"`
}

// Options say what to verify and against what.
type Options struct {
	Conn s3conn.Conn
	// TXID verifies that restore point instead of the latest (or the
	// host's recorded TXID, which is preferred when it is a restore point).
	TXID uint64
	// Window, when positive, is how far back the tenant must be
	// restorable: the oldest restore point must be at least this old.
	Window time.Duration
	// Expected is the host record's word on the tenant; nil without one.
	Expected *Expected
	// TempDir is the folder restored copies are written into, one at a
	// time per tenant and removed after; it must exist and hold no
	// database (see Run).
	TempDir string
	// Now is the clock for the window (time.Now when nil).
	Now func() time.Time
	// Uploads are the bucket's multipart uploads listed once for many
	// tenants (ListUploads); nil: each tenant's are listed.
	Uploads *Uploads
	// Bandwidth caps the bytes a second downloaded (NewBandwidth); nil:
	// no cap.
	Bandwidth *rate.Limiter
	// NoRecord says why Expected is nil, when it is not that no host
	// record names the tenant (the records could not be read).
	NoRecord string
}

// Report is one tenant's verdict and what it rests on.
type Report struct {
	Tenant  string `json:"tenant"`
	Verdict string `json:"verdict"`
	// Reason says what failed, or for unverifiable why it could not be
	// proved; for verified, what was proved.
	Reason string `json:"reason"`
	// TXID and Time are the point proved (restored and checked), or the
	// point the verdict is about.
	TXID    uint64    `json:"txid,omitempty"`
	TXIDHex string    `json:"txid_hex,omitempty"`
	Time    time.Time `json:"time,omitzero"`
	// Latest and Oldest are the replica's newest and oldest restore points.
	Latest restore.Position `json:"latest"`
	Oldest restore.Position `json:"oldest"`
	// Checksum is the restored database's LTX checksum; Expected the
	// host's record, when there is one.
	Checksum string    `json:"checksum,omitempty"`
	Expected *Expected `json:"expected,omitempty"`
	// Integrity is PRAGMA integrity_check's answer on the restored copy.
	Integrity string `json:"integrity,omitempty"`
	// Files and Bytes are the LTX files read and checked.
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
	// Problems lists every finding, the reason's first.
	Problems   []string `json:"problems,omitempty"`
	DurationMS int64    `json:"duration_ms"`
}

// Line is the verdict as one line: "verified", "unverifiable: REASON".
func (r *Report) Line() string {
	if r.Verdict == Unverifiable {
		return Unverifiable + ": " + r.Reason
	}
	return r.Verdict
}

func (r *Report) fail(verdict, reason string) *Report {
	r.Verdict, r.Reason = verdict, reason
	if len(r.Problems) == 0 || r.Problems[0] != reason {
		r.Problems = append([]string{reason}, r.Problems...)
	}
	return r
}

func (r *Report) at(p restore.Position) {
	r.TXID, r.TXIDHex, r.Time = p.TXID, p.TXIDHex, p.Time
}

// Tenant verifies one tenant. An error is returned only when the
// verification could not be made (S3 unreachable, the context ended); a
// replica found wrong is a Report with a failed verdict.
func Tenant(ctx context.Context, api API, opt Options, tenant string) (*Report, error) {
	start := time.Now()
	now := time.Now
	if opt.Now != nil {
		now = opt.Now
	}
	r := &Report{Tenant: tenant, Expected: opt.Expected}
	defer func() { r.DurationMS = time.Since(start).Milliseconds() }()
	name := untrusted.Printable(tenant)
	if err := tenants.ValidateName(tenant); err != nil {
		return r.fail(Unverifiable, err.Error()), nil
	}
	if opt.TempDir == "" {
		return nil, errors.New("verify: no folder for the restored copies")
	}

	// 1. The chain. What it reads is kept for the restore.
	if opt.Bandwidth != nil {
		api = throttled{API: api, lim: opt.Bandwidth}
	}
	api = newTenantCache(api)
	c, err := checkChain(ctx, api, opt.Conn, tenant, opt.Uploads)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: %w", name, s3conn.ExplainKey(err, opt.Conn, opt.Conn.TenantPath(tenant)+"/"))
	}
	r.Files, r.Bytes, r.Latest, r.Oldest = c.files, c.bytes, c.latest, c.oldest
	switch {
	case c.empty:
		return r.fail(Unrestorable, fmt.Sprintf("nothing to restore from at %s: the prefix holds no LTX file", opt.Conn.URL(tenant))), nil
	case c.v3Only:
		return r.fail(Unverifiable, "only v0.3 generations, which carry no checksums to verify: `litefleet restore` still restores them"), nil
	}
	if len(c.mismatches) > 0 {
		r.Problems = append(append(r.Problems, c.mismatches[1:]...), c.broken...)
		r.at(r.Latest)
		return r.fail(Mismatch, c.mismatches[0]), nil
	}
	if len(c.broken) > 0 {
		r.Problems = append(r.Problems, c.broken[1:]...)
		r.at(r.Latest)
		return r.fail(BrokenChain, c.broken[0]), nil
	}

	// 4. The window, before the restore: a replica behind what its host
	// says S3 acknowledged has lost transactions whatever it restores to.
	exp := opt.Expected
	if exp != nil && exp.TXID > r.Latest.TXID {
		r.at(r.Latest)
		return r.fail(OutsideWindow, fmt.Sprintf("the newest restore point is %s, behind TXID %s that host %s recorded as acknowledged by S3: transactions are missing from the replica",
			r.Latest, layout.TXIDHex(exp.TXID), untrusted.Printable(exp.Host))), nil
	}
	if opt.Window > 0 {
		if since := now().Add(-opt.Window); r.Oldest.Time.After(since) {
			r.at(r.Oldest)
			return r.fail(OutsideWindow, fmt.Sprintf("the oldest restore point is %s, %s after the start of the %s window (%s): the tenant cannot be restored that far back",
				r.Oldest, r.Oldest.Time.Sub(since).Round(time.Second), opt.Window, since.UTC().Format(time.RFC3339))), nil
		}
	}

	// 2. The restore. The host's recorded TXID is the point whose
	// checksum is known; else the one asked for, else the latest.
	target := opt.TXID
	identity := exp != nil && exp.Checksum != "" && (target == 0 || target == exp.TXID) && c.ends[exp.TXID]
	if identity {
		target = exp.TXID
	}
	res, err := restoreCopy(ctx, api, opt, tenant, target)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		r.at(r.Latest)
		if target != 0 {
			r.TXID, r.TXIDHex = target, layout.TXIDHex(target)
		}
		return r.fail(Unrestorable, err.Error()), nil
	}
	r.at(res.Position)
	r.Integrity, r.Checksum = res.Integrity, res.checksum

	// 3. The identity.
	switch {
	case identity && r.Checksum != exp.Checksum:
		return r.fail(Mismatch, fmt.Sprintf("the database restored at %s has checksum %s, but host %s recorded %s at that TXID: the replica's files are valid but are not what the primary held",
			res.Position, r.Checksum, untrusted.Printable(exp.Host), exp.Checksum)), nil
	case identity:
		r.Verdict, r.Reason = Verified, fmt.Sprintf("restored %s, integrity_check ok, checksum %s equals host %s's record", res.Position, r.Checksum, untrusted.Printable(exp.Host))
	case exp == nil:
		why := cmp.Or(opt.NoRecord, "no host record names the tenant")
		return r.fail(Unverifiable, fmt.Sprintf("no record of the primary's state (%s); chain valid and %s restored with integrity_check ok", why, res.Position)), nil
	case exp.Checksum == "":
		return r.fail(Unverifiable, fmt.Sprintf("host %s recorded no checksum for TXID %s; chain valid and %s restored with integrity_check ok",
			untrusted.Printable(exp.Host), layout.TXIDHex(exp.TXID), res.Position)), nil
	default:
		return r.fail(Unverifiable, fmt.Sprintf("host %s recorded the checksum of TXID %s, not of %s; chain valid and %s restored with integrity_check ok",
			untrusted.Printable(exp.Host), layout.TXIDHex(exp.TXID), layout.TXIDHex(target), res.Position)), nil
	}
	return r, nil
}

// copyResult is a restored, checked and removed copy.
type copyResult struct {
	restore.Position
	Integrity string
	checksum  string
}

// restoreCopy restores the tenant at txid (0: the latest) into a folder of
// its own under opt.TempDir, with restore's own temporary-file rules and
// integrity check, keeps the database checksum the restore computed, and
// removes everything.
func restoreCopy(ctx context.Context, api API, opt Options, tenant string, txid uint64) (*copyResult, error) {
	dir, err := os.MkdirTemp(opt.TempDir, ".verify-")
	if err != nil {
		return nil, fmt.Errorf("make a folder for the restored copy: %w", err)
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, tenant+".db")
	res, err := restore.Run(ctx, api, restore.Options{Conn: opt.Conn, Tenant: tenant, Output: out, TXID: txid, Source: restore.SourceLTX, Checksum: true})
	if err != nil {
		// "nothing was written at <our temporary path>" says nothing to
		// the operator of a verification: the cause does.
		if inner := errors.Unwrap(err); inner != nil && strings.Contains(err.Error(), out) {
			err = fmt.Errorf("the restore failed: %w", inner)
		}
		return nil, err
	}
	// The checksum the restore computed from the pages it wrote: the copy
	// is not read a second time.
	if res.DatabaseChecksum == "" {
		return nil, fmt.Errorf("the restore of %s gave no database checksum", tenant)
	}
	return &copyResult{Position: res.Position, Integrity: res.Integrity, checksum: res.DatabaseChecksum}, nil
}
