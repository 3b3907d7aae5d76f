package main

import (
	"bytes"
	"testing"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/s3browse"
)

// TestPrintLineage: inspect names the lineage's current segment and each
// stray file with why it is one; a tenant without a record prints nothing.
func TestPrintLineage(t *testing.T) {
	rec := &hosts.Lineage{Segments: []hosts.Segment{{Generation: 1, Host: "web-1"}, {Generation: 2, Host: "web-2", Since: 9}}}
	key := "databases/t1/0000/000000000000000a-000000000000000a.ltx"
	var b bytes.Buffer
	printLineage(&b, &s3browse.LineageReport{Record: rec, Checked: 1, Strays: []s3browse.Stray{{Key: key, Generation: 1, Why: "written in generation 1, after generation 2 (host web-2) continued the history from TXID 0000000000000009"}}})
	want := "lineage   generation 2 (host web-2, from TXID 9 (0000000000000009)), 2 segments, 1 stray files (restores skip them; the holder moves them to the archive):\n" +
		"  stray   " + key + ": written in generation 1, after generation 2 (host web-2) continued the history from TXID 0000000000000009\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	printLineage(&b, &s3browse.LineageReport{Strays: []s3browse.Stray{}})
	if b.Len() != 0 {
		t.Fatalf("a tenant without a lineage record prints %q", b.String())
	}
}
