package hosts_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/internal/faultproxy"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/layout"
)

// TestRecordDroppedAfterGap: a host's record never stands beside a beat
// that follows a gap in its heartbeat. Readers pair the record with the
// heartbeat's age; chaos seed 22 caught ls -json saying in sync from the
// record a replicator wrote before a 41 s SIGSTOP, paired with the beat it
// made on SIGCONT, while the application had written for 41 s. So the
// first beat of a process deletes the record an ended process left, a
// beat after a missed one deletes this process's own, and a beat on time
// leaves it; the record is written again on the next Publish
// (RecordDropped says one is due).
func TestRecordDroppedAfterGap(t *testing.T) {
	ctx := context.Background()
	b := newBucket(t)
	c := &clock{now: time.Now()}
	timing := hosts.Timing{BeatEvery: time.Minute, FenceAfter: 2 * time.Minute, DeadAfter: 3 * time.Minute, WriteMargin: time.Second}
	recordExists := func() bool {
		t.Helper()
		r, err := hosts.ReadRecord(ctx, b.api, b.name, "web-1")
		if err != nil {
			t.Fatal(err)
		}
		return r != nil
	}
	// An ended process's record, saying a tenant was in sync.
	old, _ := hosts.EncodeRecord(&hosts.Record{Host: "web-1", At: c.Now(), Tenants: []hosts.TenantRecord{{Name: "a", State: "sleeping", Local: 7, Replicated: 7}}})
	if _, err := b.api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b.name), Key: aws.String(layout.RecordKey("web-1")), Body: bytes.NewReader(old)}); err != nil {
		t.Fatal(err)
	}
	bt, err := hosts.New(hosts.Options{API: b.api, Bucket: b.name, Host: "web-1", Timing: timing, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	if tr := bt.ProbeConditional(ctx); !tr.OK {
		t.Fatalf("probe: %+v", tr)
	}
	if err := bt.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	if recordExists() || !bt.RecordDropped() {
		t.Fatalf("after a process's first beat: the ended process's record is still there (dropped %v)", bt.RecordDropped())
	}
	publish := func() {
		t.Helper()
		if err := bt.Publish(ctx, &hosts.Record{At: c.Now(), Tenants: []hosts.TenantRecord{{Name: "a", State: "sleeping", Local: 9, Replicated: 9}}}); err != nil {
			t.Fatal(err)
		}
		if bt.RecordDropped() {
			t.Fatal("RecordDropped after a Publish")
		}
	}
	publish()

	// On time: the record stays.
	c.Add(timing.BeatEvery)
	if err := bt.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	if !recordExists() || bt.RecordDropped() {
		t.Fatal("a beat on time deleted the record")
	}

	// A beat missed (the process was paused): the record goes before the
	// beat lands.
	c.Add(timing.BeatEvery * 2)
	if err := bt.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	if recordExists() || !bt.RecordDropped() {
		t.Fatalf("a beat after a gap left the record written before it (dropped %v)", bt.RecordDropped())
	}
	publish()
	if !recordExists() {
		t.Fatal("no record after Publish")
	}

	// Another process wrote the record meanwhile (it took the name): a
	// beat after a gap leaves that one alone.
	other, _ := hosts.EncodeRecord(&hosts.Record{Host: "web-1", PID: 1, At: c.Now()})
	if _, err := b.api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b.name), Key: aws.String(layout.RecordKey("web-1")), Body: bytes.NewReader(other)}); err != nil {
		t.Fatal(err)
	}
	c.Add(timing.BeatEvery * 2)
	_ = bt.Beat(ctx) // refused or not: the heartbeat is this process's still
	if !recordExists() {
		t.Fatal("a beat after a gap deleted another process's record")
	}
}

// TestGapBeatLooksFirst: a host back from a gap reads its heartbeat
// before writing it, even on a server found to honour If-Match: another
// process may have taken the name meanwhile, and a server that has since
// begun to ignore conditions would let the beat overwrite the other's
// heartbeat unseen. Chaos seed 33: a partitioned h1 came back while every
// proxy stripped conditions, overwrote its replacement's heartbeat, and
// both wrote the same LTX keys with different pages (restores failed,
// "page 133 of 167 empty"). The beat is refused (*HostInUseError) and
// the other's heartbeat stays.
func TestGapBeatLooksFirst(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	proxy, err := faultproxy.Start(faultproxy.Options{Name: "web-1", Target: srv.Endpoint, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	direct := srv.Client(t, conn)
	viaProxy := conn
	viaProxy.Endpoint = proxy.URL()
	c := &clock{now: time.Now()}
	timing := hosts.Timing{BeatEvery: time.Minute, FenceAfter: 2 * time.Minute, DeadAfter: 3 * time.Minute, WriteMargin: time.Second}
	bt, err := hosts.New(hosts.Options{API: srv.Client(t, viaProxy), Bucket: conn.Bucket, Host: "web-1", Timing: timing, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	if tr := bt.ProbeConditional(ctx); !tr.OK {
		t.Fatalf("probe: %+v", tr)
	}
	if err := bt.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	// A replacement took the name while this host was away.
	now := time.Now().UTC()
	other, _ := json.Marshal(hosts.Heartbeat{Host: "web-1", Instance: "replacement", Machine: "elsewhere", PID: 7, Started: now, At: now, Seq: 1})
	if _, err := direct.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(conn.Bucket), Key: aws.String(layout.HeartbeatKey("web-1")), Body: bytes.NewReader(other)}); err != nil {
		t.Fatal(err)
	}
	// The server now ignores If-Match; the host comes back after a gap.
	if err := proxy.Set(faultproxy.Faults{StripConditional: true}); err != nil {
		t.Fatal(err)
	}
	c.Add(3 * timing.BeatEvery)
	err = bt.Beat(ctx)
	if _, ok := errors.AsType[*hosts.HostInUseError](err); !ok {
		t.Fatalf("beat after a gap over another process's heartbeat: %v, want *HostInUseError", err)
	}
	if !bt.Fenced() {
		t.Error("not fenced after finding its name taken")
	}
	r, err := hosts.ReadBeat(ctx, direct, conn.Bucket, "web-1")
	if err != nil || !r.Found || r.Beat.Instance != "replacement" {
		t.Fatalf("the replacement's heartbeat was overwritten: %+v %v", r, err)
	}
}
