package replication

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// How big a request may be on this host's link to S3.
//
// Every upload request must finish within the fencing deadline as of when
// it starts (27–37 s with the default timing). A fixed part size fits a
// fast link only: an 8 MiB part needs 0.3 MB/s, and over 200 kB/s a 12 MB
// first snapshot never finished. So the process measures what its uplink
// carries, from the uploads it sends, and sizes each request to fill at
// most linkFill of its deadline: files above minPart go up in parts, of
// minPart on a slow link, and a part that needs the link to itself to fit
// waits until no other part is in flight. Below minPart nothing can be
// split (S3's smallest part), so a link too slow for minPart within a
// deadline cannot replicate big tenants at all: that is said in the
// failure, not retried in silence.

// minPart is S3's smallest part (every part but the last).
const minPart = 5 << 20

const (
	// linkFill is the share of its deadline a request is sized to take,
	// leaving the rest for the link's ups and downs.
	linkFill = 0.5
	// minSample is the smallest request whose time measures the link:
	// below it, latency dominates.
	minSample = 256 << 10
)

// uplink is the process's estimate of its link to S3. It is one for the
// process, as the link is: every tenant's uploads share it.
type uplink struct {
	mu sync.Mutex
	// rate is what the link carried, all uploads together, in bytes per
	// second; 0 until an upload measured it.
	rate float64
	// inflight counts upload requests in flight; area is ∫inflight·dt (in
	// seconds) up to at, so that a request's average company, and so the
	// whole link's rate, is known when it ends.
	inflight int
	area     float64
	at       time.Time
	// bounded: rate is only an upper bound, from requests cut by their
	// deadline; no request has finished to measure it.
	bounded bool
	// parts are the sizes of the parts in flight; free is closed when one
	// ends.
	parts []int64
	free  chan struct{}
	// warned is when the link was last said to be too slow.
	warned time.Time
}

// link is the process's uplink.
var link = &uplink{}

func (l *uplink) advanceLocked(now time.Time) {
	if !l.at.IsZero() {
		l.area += float64(l.inflight) * now.Sub(l.at).Seconds()
	}
	l.at = now
}

// sending is one upload request being timed.
type sending struct {
	l     *uplink
	size  int64
	start time.Time
	area  float64
	// now is the engine's clock, read under the lock so that the link's
	// readings are in order. The rate is bytes over a duration between two
	// readings: it needs time.Now's monotonic clock in production.
	now func() time.Time
}

// begin times an upload request of size bytes.
func (l *uplink) begin(size int64, clock func() time.Time) *sending {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := clock()
	l.advanceLocked(now)
	l.inflight++
	return &sending{l: l, size: size, start: now, area: l.area, now: clock}
}

// end records the request's end: sent (ok) measures the link; cut by its
// deadline (late) bounds it from above; any other failure tells nothing.
// It returns how many requests shared the link with it on average,
// itself included.
func (s *sending) end(ok, late bool) float64 {
	l := s.l
	l.mu.Lock()
	defer l.mu.Unlock()
	now := s.now()
	l.advanceLocked(now)
	l.inflight--
	elapsed := now.Sub(s.start).Seconds()
	if elapsed <= 0 {
		return 1
	}
	// The request shared the link with company on average: the link
	// carried that many times its rate.
	company := max((l.area-s.area)/elapsed, 1)
	if s.size < minSample || (!ok && !late) {
		return company
	}
	sample := float64(s.size) * company / elapsed
	switch {
	case ok && (l.rate == 0 || l.bounded):
		l.rate, l.bounded = sample, false
	case ok:
		l.rate = (l.rate + sample) / 2
	case l.rate == 0 || l.bounded:
		// Not all of it went through in that time: at most that.
		if l.rate == 0 || sample < l.rate {
			l.rate = sample
		}
		l.bounded = true
	case sample < l.rate:
		// Measured by requests that finished: a cut (a stall, a busy
		// server) lowers it, never below what the cut request needed, so
		// cuts alone never make a measured link too slow (slow).
		l.rate = (l.rate + sample) / 2
	}
	return company
}

// LinkRate is what this process measured its link to S3 to carry, in
// bytes per second (0 until an upload measured it).
func LinkRate() float64 { return link.Rate() }

// Rate is the link's measured rate in bytes per second, 0 when unknown.
func (l *uplink) Rate() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rate
}

// fitLocked is how many bytes one more request can send within budget at
// its share of the link, filling linkFill of it; 0 when unknown.
func (l *uplink) fitLocked(budget time.Duration, company int) int64 {
	return int64(l.rate / float64(company+1) * budget.Seconds() * linkFill)
}

// singleMax is the largest file sent in one PUT now: up to singlePutMax
// when the link carries it within budget, minPart until it is measured.
func (l *uplink) singleMax(budget time.Duration) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rate == 0 {
		return minPart
	}
	return min(max(l.fitLocked(budget, l.inflight), minPart), singlePutMax)
}

// partFor is the size of the next part, between minPart and the part size
// (largest for fast links), unless S3's 10,000 parts need more: least
// bytes in partsLeft parts.
func (l *uplink) partFor(budget time.Duration, least int64) int64 {
	l.mu.Lock()
	fit := l.fitLocked(budget, len(l.parts))
	known := l.rate > 0
	l.mu.Unlock()
	ps := int64(minPart)
	if known {
		ps = min(max(fit, minPart), int64(max(partSize, minPart)))
	}
	if least > ps {
		ps = (least + 1<<20 - 1) &^ (1<<20 - 1)
	}
	return ps
}

// acquirePart waits until a part of size bytes may be sent: at once when
// no other part is in flight, or when the link carries it and every part
// in flight, each at its share, within budget; never alongside others
// while the link is unknown. budget is the deadline a part would get now.
func (l *uplink) acquirePart(ctx context.Context, size int64, budget func() (time.Duration, error)) (release func(), err error) {
	for {
		b, err := budget()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		biggest := size
		for _, p := range l.parts {
			biggest = max(biggest, p)
		}
		if len(l.parts) == 0 || (l.rate > 0 && l.fitLocked(b, len(l.parts)) >= biggest) {
			l.parts = append(l.parts, size)
			l.mu.Unlock()
			return func() { l.releasePart(size) }, nil
		}
		if l.free == nil {
			l.free = make(chan struct{})
		}
		free := l.free
		l.mu.Unlock()
		select {
		case <-free:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (l *uplink) releasePart(size int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i := slices.Index(l.parts, size); i >= 0 {
		l.parts = slices.Delete(l.parts, i, i+1)
	}
	if l.free != nil {
		close(l.free)
		l.free = nil
	}
}

// SlowLinkError is an upload request cut by its fencing deadline while it
// had the link to itself: the link cannot carry it in time, and sending it
// again would only miss again. Parts are at S3's smallest already, and a
// file under it cannot be split: the tenant cannot replicate over this
// link until it is faster.
type SlowLinkError struct {
	Request string // what was sent: "part 1 of KEY", "put KEY"
	Bytes   int64
	Part    bool
	Budget  time.Duration // the deadline the request had
	// Rate is what the link was measured to carry, bytes per second;
	// AtMost says it is only a bound (no request finished to measure it).
	Rate   float64
	AtMost bool
}

func (e *SlowLinkError) Error() string {
	what := fmt.Sprintf("a part of %s (S3's smallest part is 5 MiB)", humanBytes(e.Bytes))
	if !e.Part {
		what = fmt.Sprintf("a PUT of %s (under 5 MiB, it cannot be split)", humanBytes(e.Bytes))
	}
	carries := "about " + humanRate(e.Rate)
	if e.AtMost {
		carries = "at most " + humanRate(e.Rate)
	}
	return fmt.Sprintf("%s did not finish before this host's write deadline, alone on the link: the link to S3 carries %s; "+
		"%s needs %s to finish within the %s deadline: this tenant cannot replicate until the uplink is faster; retried with backoff",
		e.Request, carries, what, humanRate(float64(e.Bytes)/max(e.Budget.Seconds(), 0.001)), e.Budget.Round(100*time.Millisecond))
}

// slow returns the error for a request of size bytes cut by its deadline
// after budget, nil unless it had the link about to itself and no request
// that finished measured the link fast enough for it (then the cut was a
// moment's stall, and the request is sent again).
func (l *uplink) slow(request string, size int64, part bool, budget time.Duration, company float64) *SlowLinkError {
	if company > 1.2 || budget <= 0 {
		// Shared: it may fit once alone, which acquirePart arranges.
		return nil
	}
	if size < minSample {
		// A few kilobytes that did not go through in tens of seconds say
		// the server or the network stopped, not that the link is slow:
		// an outage, retried as such. Taken for a slow link, it would
		// hold the tenant's uploads back for minutes after S3 came back.
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.bounded && l.rate > 0 && float64(size)/l.rate <= budget.Seconds() {
		return nil
	}
	return &SlowLinkError{Request: request, Bytes: size, Part: part, Budget: budget, Rate: l.rate, AtMost: l.bounded || l.rate == 0}
}

// humanRate writes a rate in bytes per second as operators read it.
func humanRate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.1f MB/s", r/1e6)
	case r >= 1e3:
		return fmt.Sprintf("%.0f kB/s", r/1e3)
	}
	return fmt.Sprintf("%.0f B/s", r)
}

// warnSlow logs, at most once a minute for the process, that the link
// is too slow for what it must carry.
func (l *uplink) warnSlow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.warned) < time.Minute {
		return false
	}
	l.warned = now
	return true
}
