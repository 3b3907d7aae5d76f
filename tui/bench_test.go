package tui

import (
	"testing"
	"time"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/tui/components/fleettable"
)

// The budgets, with 10,000 tenants: a frame under 5 ms, a filter
// keystroke to a new frame under 20 ms.
//
//	go test ./tui -run '^$' -bench . -benchmem

func benchDriver(b *testing.B) *driver {
	b.Helper()
	d := newDriver(b, bigFake(10000), 120, 36, Options{Color: true})
	if n := len(d.m.table.Rows()); n != 10000 {
		b.Fatalf("%d rows, want 10000", n)
	}
	return d
}

func BenchmarkFrame10k(b *testing.B) {
	d := benchDriver(b)
	d.press("G", "k") // somewhere not at the top
	b.ReportAllocs()
	for b.Loop() {
		_ = d.m.View()
	}
	reportMS(b)
}

func BenchmarkFilterKeystroke10k(b *testing.B) {
	d := benchDriver(b)
	d.press("/")
	keys := []string{"a", "b", "backspace", "backspace"}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d.m.Update(keyMsg(keys[i%len(keys)]))
		_ = d.m.View()
		i++
	}
	reportMS(b)
}

func BenchmarkRefresh10k(b *testing.B) {
	d := benchDriver(b)
	v, err := d.fake.Refresh(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	// As the refresh command does, off the UI goroutine: what is measured
	// is what Update does with the reply.
	fleet.Sort(v.Rows, fleet.SortName)
	idx := fleettable.NewIndex(v.Rows)
	b.ReportAllocs()
	for b.Loop() {
		d.m.Update(refreshedMsg{id: d.m.refreshID, view: v, sortedBy: fleettable.Order{Key: fleet.SortName}, index: idx})
		_ = d.m.View()
	}
	reportMS(b)
}

func reportMS(b *testing.B) {
	b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(time.Millisecond), "ms/op")
}
