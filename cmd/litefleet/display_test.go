package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/s3browse"
)

// A 250-character name from S3 does not widen every row of `ls`: its
// column is capped and the name shortened in the middle, both ends kept.
func TestLsCapsLongNames(t *testing.T) {
	now := time.Date(2026, 11, 26, 21, 20, 0, 0, time.UTC)
	long := "head-" + strings.Repeat("x", 240) + "-tail"
	guid := "12345678-1234-5678-9abc-123456789012"
	remote := func(name string) s3browse.TenantSummary {
		return s3browse.TenantSummary{Prefix: s3browse.Prefix{Name: name, Valid: name == guid},
			Totals: s3browse.Totals{Format: s3browse.FormatLTX, LatestTXID: 7, LatestAt: now}}
	}
	rows := fleet.Join(nil, []s3browse.TenantSummary{remote(guid), remote(long)}, now, fleet.ViewOptions{})
	v := &fleet.View{Rows: rows, Counts: fleet.Counts(rows), At: now, RemoteAt: now}
	var out bytes.Buffer
	if err := printRows(&out, v); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	status := runeIndex(lines[0], "STATUS")
	if status > maxNameColumn+2 {
		t.Fatalf("the TENANT column is %d wide:\n%s", status, out.String())
	}
	var name string
	for _, l := range lines[1 : len(lines)-1] {
		// Every row's status is where the header's is.
		if i := max(runeIndex(l, "remote only"), runeIndex(l, "invalid")); i != status {
			t.Fatalf("status at %d, header's at %d:\n%s", i, status, out.String())
		}
		if strings.HasPrefix(l, "head-") {
			name, _, _ = strings.Cut(l, " ")
		}
	}
	if utf8.RuneCountInString(name) != maxNameColumn || !strings.HasSuffix(name, "x-tail") || !strings.Contains(name, "…") {
		t.Fatalf("long name printed as %q", name)
	}
	if !strings.Contains(out.String(), guid+" ") {
		t.Fatalf("the GUID is not whole:\n%s", out.String())
	}
}

func runeIndex(s, sub string) int {
	i := strings.Index(s, sub)
	if i < 0 {
		return -1
	}
	return utf8.RuneCountInString(s[:i])
}

// inspect prints TXIDs as the terminal UI does: decimal, then the 16-hex
// form of LTX file names.
func TestInspectTXIDs(t *testing.T) {
	now := time.Date(2026, 11, 26, 21, 20, 0, 0, time.UTC)
	f := func(min, max uint64) s3browse.LTXFile {
		return s3browse.LTXFile{MinTXID: min, MaxTXID: max, MinTXIDHex: layout.TXIDHex(min), MaxTXIDHex: layout.TXIDHex(max), Size: 4096, ModifiedAt: now}
	}
	tn := &s3browse.Tenant{Name: "t1", URL: "s3://b/databases/t1"}
	tn.Format, tn.LatestTXID, tn.LatestTXIDHex, tn.LatestAt = s3browse.FormatLTX, 1841, layout.TXIDHex(1841), now
	tn.Levels = []s3browse.Level{{
		LevelStats: s3browse.LevelStats{Level: 0, Count: 2, Bytes: 8192, MaxTXID: 1841, MaxTXIDHex: layout.TXIDHex(1841)},
		Files:      []s3browse.LTXFile{f(1838, 1840), f(1841, 1841)},
	}}
	var out bytes.Buffer
	printTenant(&out, tn, now, 5)
	for _, want := range []string{
		"latest    TXID 1841 (0000000000000731)",
		"1841 (0000000000000731)  ", // level's MAX TXID
		"1838 (000000000000072e)  1840 (0000000000000730)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("inspect lacks %q:\n%s", want, out.String())
		}
	}
}
