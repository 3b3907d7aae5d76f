package fleet

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/superfly/ltx"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/s3conn"
)

func TestMain(m *testing.M) { os.Exit(s3test.Main(m)) }

// countingAPI counts the requests a refresh makes.
type countingAPI struct {
	s3conn.API
	lists, gets atomic.Int64
}

func (c *countingAPI) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opt ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	c.lists.Add(1)
	return c.API.ListObjectsV2(ctx, in, opt...)
}

func (c *countingAPI) GetObject(ctx context.Context, in *s3.GetObjectInput, opt ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	c.gets.Add(1)
	return c.API.GetObject(ctx, in, opt...)
}

func (c *countingAPI) take() (lists, gets int64) { return c.lists.Swap(0), c.gets.Swap(0) }

func put(t *testing.T, client *s3.Client, bucket, key string, body []byte) {
	t.Helper()
	if _, err := client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// putTenant writes a replica of txid transactions: a snapshot and L0 files.
func putTenant(t *testing.T, client *s3.Client, conn s3conn.Conn, name string, txid uint64) {
	t.Helper()
	put(t, client, conn.Bucket, fmt.Sprintf("%s/0009/%s", conn.TenantPath(name), ltx.FormatFilename(1, 1)), ltxSized)
	for tx := uint64(2); tx <= txid; tx++ {
		put(t, client, conn.Bucket, fmt.Sprintf("%s/0000/%s", conn.TenantPath(name), ltx.FormatFilename(ltx.TXID(tx), ltx.TXID(tx))), ltxSized)
	}
}

func putHost(t *testing.T, client *s3.Client, bucket string, rec *hosts.Record) {
	t.Helper()
	put(t, client, bucket, layout.HeartbeatKey(rec.Host), []byte(`{"host":"`+rec.Host+`"}`))
	body, err := hosts.EncodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	put(t, client, bucket, layout.RecordKey(rec.Host), body)
}

const (
	gA = "aaaaaaaa-0000-4000-8000-000000000001"
	gB = "bbbbbbbb-0000-4000-8000-000000000002"
	gC = "cccccccc-0000-4000-8000-000000000003"
	gD = "dddddddd-0000-4000-8000-000000000004"
	gE = "eeeeeeee-0000-4000-8000-000000000005"
)

// The view takes each tenant's host, state and lag from the host records,
// lists the objects only of the tenant no host reports, and reads a record
// again only when it changed.
func TestRefreshFromHostRecords(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	client := srv.Client(t, conn)
	for name, txid := range map[string]uint64{gA: 12, gB: 5, gC: 7, gD: 10} {
		putTenant(t, client, conn, name, txid)
	}
	sync := time.Now().Add(-time.Minute).Unix()
	putHost(t, client, conn.Bucket, &hosts.Record{Host: "web-1", Tenants: []hosts.TenantRecord{
		{Name: gA, State: "replicating", Local: 12, Replicated: 12, LastSync: sync},
		{Name: gB, State: "diverged", Reason: "the replica's TXID 5 is not the local file's", Local: 5, Replicated: 5},
		{Name: gD, State: "leased elsewhere", Reason: "held by web-2"},
		{Name: "../../etc", State: "replicating"},      // no tenant name: ignored
		{Name: gA, Prefix: "staging", State: "failed"}, // another prefix's tenant
		{Name: gC, Prefix: "/", State: "failed"},       // a tenant at the bucket's root
	}})
	putHost(t, client, conn.Bucket, &hosts.Record{Host: "web-2", Tenants: []hosts.TenantRecord{
		{Name: gD, State: "replicating", Reason: "uploading 43 %, 20 MB of 46 MB", Local: 15, Replicated: 10, LagMillis: 30_000, LastSync: sync},
		{Name: gE, State: "starting", Reason: "snapshotting 43 %, 520 MB of 1.2 GB"},
	}})

	api := &countingAPI{API: client}
	fl := &Fleet{Conn: conn, API: api}
	v, err := fl.Refresh(context.Background())
	if err != nil || v.RemoteErr != "" {
		t.Fatalf("refresh: %v %s", err, v.RemoteErr)
	}
	lists, gets := api.take()
	// One listing of the hosts, two records, one delimited listing of the
	// tenants, one listing of the one tenant no host reports.
	if lists != 3 || gets != 2 {
		t.Errorf("first refresh: %d listings and %d GETs, want 3 and 2", lists, gets)
	}
	rows := map[string]Row{}
	for _, r := range v.Rows {
		rows[r.Tenant] = r
	}
	if len(rows) != 5 {
		t.Fatalf("%d rows, want 5: %+v", len(rows), v.Rows)
	}
	check := func(name string, status Status, host, state string, lagTX uint64) Row {
		t.Helper()
		r := rows[name]
		if r.Status != status || r.Host != host || r.State != state || r.LagTXIDs != lagTX {
			t.Errorf("%s: status %q host %q state %q lag %d tx (note %q), want %q %q %q %d", name, r.Status, r.Host, r.State, r.LagTXIDs, r.Note, status, host, state, lagTX)
		}
		return r
	}
	a := check(gA, StatusInSync, "web-1", "replicating", 0)
	if a.Remote == nil || a.Remote.LatestTXID != 12 || a.Remote.Source != s3browse.SourceHostRecord || a.Remote.LatestAt.Unix() != sync {
		t.Errorf("%s: remote %+v, want TXID 12 at the record's last sync, from the host record", gA, a.Remote)
	}
	check(gB, StatusDiverged, "web-1", "diverged", 0)
	c := check(gC, StatusRemoteOnly, "", "", 0)
	if c.Remote == nil || c.Remote.LatestTXID != 7 || c.Remote.Objects != 7 || c.Remote.Source != "" {
		t.Errorf("%s: remote %+v, want its objects listed (7, TXID 7)", gC, c.Remote)
	}
	d := check(gD, StatusLagging, "web-2", "replicating", 5)
	if d.Lag < 30*time.Second {
		t.Errorf("%s: lag %s, want at least the record's 30s", gD, d.Lag)
	}
	if !strings.Contains(d.Note, "host web-2: uploading 43 %, 20 MB of 46 MB") {
		t.Errorf("%s: note %q, want the upload's progress", gD, d.Note)
	}
	if e := check(gE, StatusStarting, "web-2", "starting", 0); !strings.Contains(e.Note, "snapshotting 43 %, 520 MB of 1.2 GB") {
		t.Errorf("%s: note %q, want the first snapshot's progress", gE, e.Note)
	}
	if len(v.Hosts) != 2 || v.Hosts[0].Name != "web-1" || v.Hosts[0].Tenants != 3 || v.Hosts[1].Tenants != 2 || v.Hosts[0].Silent {
		t.Errorf("hosts %+v, want web-1 with 3 tenants of this prefix and web-2 with 2, both alive", v.Hosts)
	}

	// Nothing changed: the records are not read again.
	if _, err := fl.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if lists, gets := api.take(); lists != 3 || gets != 0 {
		t.Errorf("second refresh: %d listings and %d GETs, want 3 and 0", lists, gets)
	}

	// -scan lists every object, and still shows the hosts' states.
	fl.FullScan = true
	v, err = fl.Refresh(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, gets := api.take(); gets != 0 {
		t.Errorf("full scan read %d records again, want 0", gets)
	}
	for _, r := range v.Rows {
		if r.Tenant == gA && (r.Remote.Source != "" || r.Remote.Objects != 12 || r.Host != "web-1" || r.Status != StatusInSync) {
			t.Errorf("full scan: %s remote %+v host %q status %q, want its 12 objects listed, web-1, in sync", gA, r.Remote, r.Host, r.Status)
		}
		if r.Tenant == gB && r.Status != StatusDiverged {
			t.Errorf("full scan: %s is %q, want diverged as its host says, whatever the TXIDs", gB, r.Status)
		}
	}
}

// Without any host record the view lists every object, as before.
func TestRefreshWithoutHostsScans(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	client := srv.Client(t, conn)
	putTenant(t, client, conn, gA, 3)
	api := &countingAPI{API: client}
	v, err := (&Fleet{Conn: conn, API: api}).Refresh(context.Background())
	if err != nil || v.RemoteErr != "" {
		t.Fatalf("refresh: %v %s", err, v.RemoteErr)
	}
	if len(v.Rows) != 1 || v.Rows[0].Remote == nil || v.Rows[0].Remote.Objects != 3 || v.Rows[0].Host != "" {
		t.Fatalf("rows %+v, want %s with its 3 objects and no host", v.Rows, gA)
	}
	if lists, _ := api.take(); lists != 2 {
		t.Errorf("%d listings, want 2 (the hosts' folder, the bucket)", lists)
	}
}

// ltxSized is the body of a fake LTX file: the least an LTX object can be
// (a header and a trailer), for listings that count it as one
// (layout.LTXObject).
var ltxSized = bytes.Repeat([]byte("x"), ltx.HeaderSize+ltx.TrailerSize)
