package fleet

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/hostview"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/untrusted"
)

// recordSummary is a tenant's S3 side as its host's record tells it.
func recordSummary(name string, r *hostview.HostReport) s3browse.TenantSummary {
	s := s3browse.TenantSummary{Prefix: s3browse.Prefix{Name: name, Valid: true}, Source: s3browse.SourceHostRecord, HasLease: true}
	s.Format = s3browse.FormatEmpty
	if r.Replicated > 0 {
		s.Format = s3browse.FormatLTX
		s.LatestTXID, s.LatestTXIDHex = r.Replicated, layout.TXIDHex(r.Replicated)
		s.LatestAt, s.LatestLTXAt = r.LastSync, r.LastSync
	}
	return s
}

// perTenantLimit is how many tenants are listed one prefix at a time
// before a full listing of the bucket is cheaper: a tenant has about ten
// objects (LTX files of several levels, its claim), so a full listing
// costs about one request per hundred tenants.
func perTenantLimit(tenants int) int { return max(16, tenants/100) }

// remoteSide is the S3 side of a refresh: the host records, and the
// objects of the tenants no live host reports (or of every tenant with
// full). It returns the tenants' summaries (sorted by name), the hosts,
// each tenant's reports, and an error that says the bucket could not be
// listed.
func (f *Fleet) remoteSide(ctx context.Context, now time.Time) ([]s3browse.TenantSummary, []hostview.HostSummary, map[string][]hostview.HostReport, error) {
	hostList, reports, herr := f.records.Read(ctx, f.API, f.Conn, now)
	switch {
	case herr == nil, errors.Is(herr, hostview.ErrNoHosts):
	case ctx.Err() != nil:
		return nil, nil, nil, ctx.Err()
	case s3conn.IsAccessDenied(herr):
		// A key that may list the tenants but not .litefleet/: no host
		// view, the full listing as before.
		hostList, reports = nil, nil
	default:
		return nil, nil, nil, herr
	}
	if f.FullScan || len(reports) == 0 {
		remote, err := s3browse.Scan(ctx, f.API, f.Conn)
		return remote, hostList, reports, err
	}
	prefixes, err := s3browse.ListTenants(ctx, f.API, f.Conn)
	if err != nil {
		return nil, nil, nil, err
	}
	var unreported []string
	inS3 := make(map[string]bool, len(prefixes))
	for _, p := range prefixes {
		inS3[p.Name] = true
		if !hostview.Live(reports[p.Name]) {
			unreported = append(unreported, p.Name)
		}
	}
	if len(unreported) > perTenantLimit(len(prefixes)) {
		remote, err := s3browse.Scan(ctx, f.API, f.Conn)
		return remote, hostList, reports, err
	}
	remote := make([]s3browse.TenantSummary, 0, len(prefixes)+len(reports))
	listed := make([]s3browse.TenantSummary, len(unreported))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, name := range unreported {
		g.Go(func() error {
			s, err := s3browse.Summarize(gctx, f.API, f.Conn, name)
			listed[i] = s
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, nil, err
	}
	remote = append(remote, listed...)
	for _, p := range prefixes {
		if rs := reports[p.Name]; hostview.Live(rs) {
			remote = append(remote, recordSummary(p.Name, &rs[0]))
		}
	}
	// A tenant a live host reports before its first upload has no prefix
	// yet: it still has a row, with nothing in S3.
	for name, rs := range reports {
		if !inS3[name] && hostview.Live(rs) {
			remote = append(remote, recordSummary(name, &rs[0]))
		}
	}
	sort.Slice(remote, func(i, j int) bool { return remote[i].Name < remote[j].Name })
	return remote, hostList, reports, nil
}

// ApplyHostReports adds to joined rows what the best report of each
// tenant's hosts says (reports sorted best first, as Refresh has them).
func ApplyHostReports(rows []Row, reports map[string][]hostview.HostReport, opt ViewOptions) {
	if len(reports) == 0 {
		return
	}
	opt = opt.withDefaults()
	for i := range rows {
		if rs := reports[rows[i].Tenant]; len(rs) > 0 {
			applyHost(&rows[i], &rs[0], opt)
		}
	}
}

// applyHost adds to a joined row what the best host report says of its
// tenant: the host, its state and how old the record is. A host whose
// heartbeat is stale makes the row "host silent"; a host state that needs
// attention (sync failing, diverged, failed, missing, lease lost,
// starting) becomes the row's status, whatever the TXIDs say. The lag is
// always the row's own local TXID − its S3 TXID: this host's file's when
// it has one, else the TXID the replicating host reports, never a lag the
// record computed from other numbers than the row shows.
func applyHost(r *Row, rep *hostview.HostReport, opt ViewOptions) {
	r.Host, r.State, r.Reason, r.HostAge, r.HostSilent = rep.Host, rep.State, rep.Reason, rep.HostAge, rep.Silent
	r.HostLocalTXID, r.RecordAge, r.StateAge = rep.LocalTXID, rep.RecordAge, rep.StateAge
	r.VerifiedAt, r.Verdict = rep.VerifiedAt, rep.Verdict
	if r.Status == StatusInvalid {
		return
	}
	host := untrusted.Printable(rep.Host)
	if r.Local == nil {
		hostLag(r, rep)
	}
	switch {
	case rep.Silent:
		r.Status = StatusHostSilent
		r.Note = fmt.Sprintf("host %s is silent: last heartbeat %s ago (it last said %s)", host, rep.HostAge.Round(time.Second), untrusted.Printable(rep.State))
	case rep.State == hostview.StateReplicating || rep.State == hostview.StateSleeping:
		if r.LagUnknown != "" {
			if r.Local == nil {
				r.Status, r.Note = StatusUnknown, "lag unknown: "+r.LagUnknown
			}
			noteUpload(r, rep, host)
			return // judged from the listing and the file
		}
		r.Status, r.Note = StatusInSync, ""
		if r.LagTXIDs > 0 && r.Lag >= opt.LagThreshold {
			r.Status = StatusLagging
			r.Note = fmt.Sprintf("%d transaction(s) not in S3 for %s (host %s)", r.LagTXIDs, r.Lag.Round(time.Second), host)
		}
		noteUpload(r, rep, host)
	case rep.State == hostview.StateLeased:
		r.Status = StatusLeased
		r.Note = "host " + host + " reports it held by another host"
		if rep.Reason != "" {
			r.Note += ": " + untrusted.Printable(rep.Reason)
		}
	case rep.State == hostview.StateStopped:
		// Being stopped there: the listing's judgement stands.
	default:
		r.Status = Status(rep.State)
		if !r.Status.known() {
			r.Status = StatusError
		}
		r.Note = "host " + host + ": " + untrusted.Printable(rep.State)
		if rep.StateAge > 0 {
			r.Note += " for " + rep.StateAge.Round(time.Second).String()
		}
		if rep.Reason != "" {
			r.Note += ": " + untrusted.Printable(rep.Reason)
		}
	}
}

// noteUpload adds a big upload in flight to a replicating row's note (its
// progress leads the host's reason: "uploading 43 %, 20 MB of 46 MB"), so
// that a long upload shows as progress, not as a silent lag.
func noteUpload(r *Row, rep *hostview.HostReport, host string) {
	if !strings.HasPrefix(rep.Reason, "uploading") && !strings.HasPrefix(rep.Reason, "snapshotting") {
		return
	}
	note := "host " + host + ": " + untrusted.Printable(rep.Reason)
	if r.Note != "" {
		note = r.Note + "; " + note
	}
	r.Note = note
}

// lateBeat is a heartbeat's age past which its host missed a beat: its
// record cannot vouch for a tenant being in sync now.
const lateBeat = 2 * hosts.BeatEvery

// hostLag is the lag of a row with nothing local: the local TXID the host
// reports minus the row's S3 TXID (the record's own, or a listing's with
// -scan), with the wait the host measured; unknown where the host is
// silent or either TXID is.
func hostLag(r *Row, rep *hostview.HostReport) {
	switch {
	case rep.Silent:
		r.unknownLag("host silent")
		return
	case !rep.Replicates():
		return // another host holds it: the listing's judgement stands
	case rep.HostAge >= lateBeat:
		// A beat missed: the host is paused or cut off from S3 (it stops
		// uploading at hosts.FenceAfter), and its record, however recent,
		// says nothing of what the application wrote since.
		r.unknownLag(fmt.Sprintf("host's last heartbeat %s ago", rep.HostAge.Round(time.Second)))
		return
	case r.Remote == nil || r.Remote.Format == s3browse.FormatEmpty:
		r.unknownLag("nothing replicated in S3")
		return
	case rep.LocalTXID == 0 || r.Remote.LatestTXID == 0:
		r.unknownLag("no TXID to compare with")
		return
	}
	r.LagUnknown, r.LagTXIDs, r.Lag = "", 0, 0
	if rep.LocalTXID > r.Remote.LatestTXID {
		r.LagTXIDs = rep.LocalTXID - r.Remote.LatestTXID
		r.Lag = rep.Lag
	}
}
