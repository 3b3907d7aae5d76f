package hosts_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/layout"
)

func TestDecodeClaim(t *testing.T) {
	for _, c := range []struct {
		name, body, unreadable, host, owner string
		gen                                 int64
	}{
		{name: "litestream lease", body: `{"generation":3,"expires_at":"2025-03-01T12:00:30Z","owner":"db-host:42"}`, owner: "db-host:42", gen: 3},
		{name: "litefleet claim", body: `{"generation":2,"expires_at":"9999-12-31T00:00:00Z","owner":"litefleet host h1","host":"h1","pid":7}`, owner: "litefleet host h1", host: "h1", gen: 2},
		{name: "not JSON", body: "\x1b[31mnot json", unreadable: "not JSON"},
		{name: "empty", body: "", unreadable: "not JSON"},
		{name: "wrong types", body: `{"generation":"three"}`, unreadable: "not JSON"},
		{name: "invalid host", body: `{"generation":1,"host":"../x\n"}`, unreadable: "host name is not valid"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := hosts.DecodeClaim([]byte(c.body))
			if c.unreadable != "" {
				if !strings.HasPrefix(got.Unreadable, c.unreadable) {
					t.Fatalf("Unreadable = %q, want %q", got.Unreadable, c.unreadable)
				}
				return
			}
			if got.Unreadable != "" || got.Host != c.host || got.Owner != c.owner || got.Generation != c.gen {
				t.Fatalf("decoded %+v", got)
			}
		})
	}
}

// FuzzDecodeClaim: lock.json is untrusted. Whatever decodes names a valid
// host or none, and encodes back to a claim that decodes the same.
func FuzzDecodeClaim(f *testing.F) {
	f.Add([]byte(`{"generation":3,"expires_at":"2025-03-01T12:00:30Z","owner":"db-host:42"}`))
	f.Add([]byte(`{"generation":2,"expires_at":"9999-12-31T00:00:00Z","host":"h1","claimed_at":"2026-01-01T00:00:00Z","instance":"i","machine":"m","pid":7}`))
	f.Add([]byte(`{"host":"..."}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c := hosts.DecodeClaim(body)
		if c.Unreadable != "" {
			return
		}
		if c.Host != "" && layout.ValidateHost(c.Host) != nil {
			t.Fatalf("readable claim with invalid host %q", c.Host)
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", c, err)
		}
		back := hosts.DecodeClaim(b)
		if back.Unreadable != "" || back.Host != c.Host || back.Owner != c.Owner || back.Generation != c.Generation || !back.ExpiresAt.Equal(c.ExpiresAt) {
			t.Fatalf("%q → %+v → %s → %+v", body, c, b, back)
		}
	})
}

// TestWatchClaim: the one-shot form of the engine's rule, against a real
// S3 server with fast timing.
func TestWatchClaim(t *testing.T) {
	b := newBucket(t)
	ctx := context.Background()
	const tenant = "databases/watched"
	put := func(body string) {
		t.Helper()
		if _, err := b.api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b.name), Key: aws.String(layout.ClaimKey(tenant)), Body: strings.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	read := func() *hosts.Claim {
		t.Helper()
		c, err := hosts.ReadClaim(ctx, b.api, b.name, tenant)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	watch := func(c *hosts.Claim) (time.Duration, error) {
		start := time.Now()
		err := hosts.WatchClaim(ctx, b.api, b.name, tenant, c, fast)
		return time.Since(start), err
	}
	held := func(what string, err error, reason string) {
		t.Helper()
		var h *hosts.HeldError
		if !errors.As(err, &h) || !strings.Contains(err.Error(), reason) {
			t.Fatalf("%s: %v, want held (%s)", what, err, reason)
		}
	}

	if _, err := watch(nil); err != nil {
		t.Fatalf("no claim: %v", err)
	}

	// A live host's claim is held; once its beats stop, free after
	// DeadAfter unchanged.
	a := b.started(t, "host-a")
	if _, err := a.Acquire(ctx, b.api, tenant); err != nil {
		t.Fatal(err)
	}
	c := read()
	_, err := watch(c)
	held("a live host's claim", err, "changed while watched: live")
	stopBeating(t, a)
	if took, err := watch(c); err != nil || took < fast.DeadAfter {
		t.Fatalf("a dead host's claim: %v after %s, want free after DeadAfter (%s)", err, took, fast.DeadAfter)
	}

	// A Litestream lease: held until it expires (its writer's clock),
	// then until it stayed unchanged for DeadAfter (ours).
	put(`{"generation":4,"expires_at":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `","owner":"old-box:77"}`)
	took, err := watch(read())
	held("an unexpired Litestream lease", err, "a Litestream lease of old-box:77")
	if took > fast.BeatEvery {
		t.Errorf("an unexpired lease took %s to judge, want at once", took)
	}
	put(`{"generation":4,"expires_at":"2000-01-01T00:00:00Z","owner":"old-box:77"}`)
	if took, err := watch(read()); err != nil || took < fast.DeadAfter {
		t.Fatalf("an expired, unchanged Litestream lease: %v after %s, want free after DeadAfter", err, took)
	}
	// Expired, but renewed while watched (by the real server, between
	// the watch's first and second read): held.
	renewing := &renewOnSecondRead{Client: b.api, key: layout.ClaimKey(tenant), renew: func() {
		put(`{"generation":5,"expires_at":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `","owner":"old-box:77"}`)
	}}
	err = hosts.WatchClaim(ctx, renewing, b.name, tenant, read(), fast)
	held("a Litestream lease renewed while watched", err, "a Litestream lease of old-box:77")

	// Junk: held until unchanged for DeadAfter, like the engine.
	put("\x00junk")
	if c := read(); c.Unreadable == "" {
		t.Fatal("junk decoded as a claim")
	} else if took, err := watch(c); err != nil || took < fast.DeadAfter {
		t.Fatalf("unchanged junk: %v after %s, want free after DeadAfter", err, took)
	}

	// What cannot be read (nothing listens at the endpoint) fails
	// closed, and says why.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dead := s3.New(b.api.Options(), func(o *s3.Options) {
		o.BaseEndpoint = aws.String("http://" + addr)
		o.RetryMaxAttempts = 1
	})
	err = hosts.WatchClaim(ctx, dead, b.name, tenant, &hosts.Claim{Unreadable: "x"}, fast)
	held("a claim that cannot be read", err, "treated as held")
	err = hosts.WatchClaim(ctx, dead, b.name, tenant, &hosts.Claim{Host: "host-z"}, fast)
	held("a heartbeat that cannot be read", err, "treated as live")
}

// renewOnSecondRead runs renew before the second GET of key.
type renewOnSecondRead struct {
	*s3.Client
	key   string
	n     int
	renew func()
}

func (r *renewOnSecondRead) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if aws.ToString(in.Key) == r.key {
		if r.n++; r.n == 2 {
			r.renew()
		}
	}
	return r.Client.GetObject(ctx, in, opts...)
}
