package replication

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// measure records a request of size bytes that took d alone on the link.
func measure(l *uplink, size int64, d time.Duration, ok, late bool) {
	at := time.Now()
	s := l.begin(size, func() time.Time { return at })
	at = at.Add(d)
	s.end(ok, late)
}

// TestUplinkSizesRequests: an unknown link gets 5 MiB parts and no PUT
// over 5 MiB; a fast one 8 MiB parts and PUTs up to 16 MiB; a slow one 5
// MiB parts, one at a time; a request cut by its deadline bounds the rate
// from above.
func TestUplinkSizesRequests(t *testing.T) {
	const budget = 30 * time.Second
	l := &uplink{}
	if got := l.partFor(budget, 0); got != minPart {
		t.Fatalf("unknown link: parts of %d, want %d", got, minPart)
	}
	if got := l.singleMax(budget); got != minPart {
		t.Fatalf("unknown link: PUTs up to %d, want %d", got, minPart)
	}

	measure(l, 10e6, time.Second, true, false) // 10 MB/s
	if r := l.Rate(); r < 9e6 || r > 11e6 {
		t.Fatalf("rate %.0f after 10 MB in 1 s", r)
	}
	if got := l.partFor(budget, 0); got != int64(partSize) {
		t.Fatalf("fast link: parts of %d, want %d", got, partSize)
	}
	if got := l.singleMax(budget); got != singlePutMax {
		t.Fatalf("fast link: PUTs up to %d, want %d", got, singlePutMax)
	}
	// 10,000 parts of a 100 GB file need more than the part size.
	if got := l.partFor(budget, 100e9/maxParts); got < 100e9/maxParts || got%(1<<20) != 0 {
		t.Fatalf("a 100 GB file: parts of %d", got)
	}

	l = &uplink{}
	measure(l, 1e6, 5*time.Second, true, false) // 200 kB/s
	if got := l.partFor(budget, 0); got != minPart {
		t.Fatalf("slow link: parts of %d, want %d", got, minPart)
	}
	if got := l.singleMax(budget); got != minPart {
		t.Fatalf("slow link: PUTs up to %d, want %d", got, minPart)
	}

	// A second part waits for the first on a slow link.
	budgetFn := func() (time.Duration, error) { return budget, nil }
	release, err := l.acquirePart(context.Background(), minPart, budgetFn)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		r, err := l.acquirePart(context.Background(), minPart, budgetFn)
		if err == nil {
			r()
		}
		got <- err
	}()
	select {
	case <-got:
		t.Fatal("a second 5 MiB part was let beside the first on a 200 kB/s link")
	case <-time.After(100 * time.Millisecond):
	}
	// Nor a small last part beside a big one: the big one, started alone,
	// would no longer fit.
	small := make(chan error, 1)
	go func() {
		r, err := l.acquirePart(context.Background(), 1e6, budgetFn)
		if err == nil {
			r()
		}
		small <- err
	}()
	select {
	case <-small:
		t.Fatal("a 1 MB part was let beside a 5 MiB one on a 200 kB/s link")
	case <-time.After(100 * time.Millisecond):
	}
	release()
	if err := <-small; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the second part was not let through within 5 s of the first's end")
	}

	// A cut request bounds the rate: 5 MiB not sent in 4 s alone.
	l = &uplink{}
	measure(l, minPart, 4*time.Second, false, true)
	slow := l.slow("part 1 of k", minPart, true, 4*time.Second, 1)
	if slow == nil || !slow.AtMost {
		t.Fatalf("a part cut alone: %v", slow)
	}
	for _, want := range []string{"part 1 of k", "carries at most 1.3 MB/s", "a part of 5 MB", "needs 1.3 MB/s", "within the 4s deadline", "cannot replicate until the uplink is faster"} {
		if !strings.Contains(slow.Error(), want) {
			t.Fatalf("%q lacks %q", slow.Error(), want)
		}
	}
	// Shared with another, it may fit once alone: no verdict.
	if s := l.slow("part 1 of k", minPart, true, 4*time.Second, 2); s != nil {
		t.Fatalf("a part cut while sharing the link: %v", s)
	}
	// Measured fast enough by requests that finished, a cut is a stall,
	// and cuts alone never make the link too slow.
	measure(l, 10e6, 5*time.Second, true, false) // 2 MB/s
	for i := range 10 {
		measure(l, minPart, 4*time.Second, false, true)
		if s := l.slow("part 2 of k", minPart, true, 4*time.Second, 1); s != nil {
			t.Fatalf("cut %d on a link measured at 2 MB/s (rate now %.0f): %v", i+1, l.Rate(), s)
		}
	}
	l = &uplink{}
	measure(l, minPart, 4*time.Second, false, true)
	// A PUT under 5 MiB cannot be split.
	if s := l.slow("put k", 3e6, false, 4*time.Second, 1); s == nil || !strings.Contains(s.Error(), "a PUT of 3 MB (under 5 MiB, it cannot be split)") {
		t.Fatalf("a small PUT cut alone: %v", s)
	}
}

// TestSlowBackoff: a slow-link failure holds the tenant's uploads back,
// longer each time, until the clock it is given passes the delay, and a
// success resets it.
func TestSlowBackoff(t *testing.T) {
	var b slowBackoff
	now := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC) // not the real clock: the backoff reads only the one it is given
	if err := b.wait(3e6, now); err != nil {
		t.Fatal(err)
	}
	b.note(errors.New("some other failure"), now)
	if err := b.wait(3e6, now); err != nil {
		t.Fatalf("held back after a failure that is not the link's: %v", err)
	}
	slow := &SlowLinkError{Request: "put k", Bytes: 3e6, Budget: time.Second, Rate: 1e6}
	b.note(fmt.Errorf("write: %w", slow), now)
	var got *SlowLinkError
	if err := b.wait(3e6, now); !errors.As(err, &got) {
		t.Fatalf("not held back after a slow link: %v", err)
	}
	if err := b.wait(100e3, now); err != nil {
		t.Fatalf("a small change held back after a big upload failed: %v", err)
	}
	first := b.delay
	if err := b.wait(3e6, now.Add(first-time.Millisecond)); err == nil {
		t.Fatalf("released %s into a backoff of %s", first-time.Millisecond, first)
	}
	if err := b.wait(3e6, now.Add(first)); err != nil {
		t.Fatalf("still held back once the clock passed the backoff of %s: %v", first, err)
	}
	b.note(slow, now)
	if b.delay != 2*first {
		t.Fatalf("backoff %s after %s, want it doubled", b.delay, first)
	}
	b.note(nil, now)
	if b.delay != 0 {
		t.Fatalf("backoff %s after a success", b.delay)
	}
}

// TestStallIsNotSlowLink: a small PUT cut by its deadline, alone on the
// link, is an outage (S3 frozen, a black hole), not a link too slow for
// it: no SlowLinkError, so nothing is held back once S3 answers again
// (TestOutageFrozenDSN saw a 364-byte PUT called "0 B/s" and the tenant's
// uploads backed off after the outage). A big request cut alone still
// says the link is too slow.
func TestStallIsNotSlowLink(t *testing.T) {
	const budget = 35 * time.Second
	l := &uplink{}
	measure(l, 364, budget, false, true)
	if err := l.slow("put small.ltx", 364, false, budget, 1); err != nil {
		t.Fatalf("a 364-byte PUT cut by its deadline: %v, want no slow-link verdict", err)
	}
	measure(l, minPart, budget, false, true)
	if err := l.slow("part 1", minPart, true, budget, 1); err == nil {
		t.Fatal("a 5 MiB part cut alone by its deadline on an unmeasured link: no slow-link verdict")
	}
}
