package fleet

import (
	"cmp"
	"fmt"
	"time"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/untrusted"
)

// LeaseState is what a tenant's lock.json says about who writes its replica.
type LeaseState string

// The lease states.
const (
	LeaseNone       LeaseState = "none"       // no lock.json
	LeaseLive       LeaseState = "live"       // held, not expired
	LeaseExpired    LeaseState = "expired"    // held once, expired
	LeaseUnreadable LeaseState = "unreadable" // junk, or could not be read: holds no one's lease
)

// JudgeLease is the one reading of a tenant's lease, for ls, inspect and
// the terminal UI alike: l is lock.json as read (nil when there is none),
// judged at now. It returns the state and the words to print after
// "lease": "held by H until T (25s left, generation 7)", "expired 3m ago,
// last held by H", "unreadable: REASON" or "none: …". A lock.json that
// cannot be read or decoded, or that has no expiry, is no one's lease.
func JudgeLease(l *s3browse.Lease, now time.Time) (LeaseState, string) {
	switch {
	case l == nil:
		return LeaseNone, "none: no replicator holds this tenant"
	case l.Error != "":
		return LeaseUnreadable, "unreadable: " + untrusted.Printable(l.Error)
	case l.Host != "" && l.HostWatched && l.HostDead:
		return LeaseExpired, fmt.Sprintf("claimed by %s: another host may take the tenant", l.Holder())
	case l.Host != "" && l.HostStale:
		// One look proves no host dead (s3browse.Lease.Live): S3's clock
		// is only a hint that it may be.
		return LeaseLive, fmt.Sprintf("held by %s, claim generation %d: it may be dead; another host takes the tenant once it has seen the heartbeat unchanged for %s",
			l.Holder(), l.Generation, Duration(hosts.DeadAfter))
	case l.Host != "" && l.HostAlive:
		// A litefleet claim: held while its host's heartbeat changes.
		return LeaseLive, fmt.Sprintf("held by %s, claim generation %d", l.Holder(), l.Generation)
	case l.Host != "":
		return LeaseExpired, fmt.Sprintf("claimed by %s: that host stopped; another host takes the tenant once it has seen no heartbeat for %s", l.Holder(), Duration(hosts.DeadAfter))
	case l.ExpiresAt.IsZero():
		return LeaseUnreadable, "unreadable: lock.json has no expires_at: not a Litestream lease"
	case l.Expired(now):
		return LeaseExpired, fmt.Sprintf("expired %s ago, last held by %s", Duration(now.Sub(l.ExpiresAt)), untrusted.Printable(LeaseHolder(l.Owner)))
	}
	return LeaseLive, fmt.Sprintf("held by %s until %s (%s left, generation %d)",
		untrusted.Printable(LeaseHolder(l.Owner)), Stamp(l.ExpiresAt), Duration(l.ExpiresAt.Sub(now)), l.Generation)
}

// Duration prints d in its largest unit: 850ms, 42s, 5m, 3h, 2d. One
// format for the command line and the terminal UI.
func Duration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// Stamp prints t in UTC to the second, as the CLI's -timestamp takes it.
func Stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// LeaseHolder names a lease's owner for messages; Litestream's leaser may
// write none.
func LeaseHolder(owner string) string { return cmp.Or(owner, "an unnamed replicator") }
