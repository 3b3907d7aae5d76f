package hosts

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

// A real record of 100,000 tenants fits every limit with room to spare:
// four times its size, gzipped and not, and four times its tenants.
func TestRecordLimitsFitLargeFleet(t *testing.T) {
	rec := fleetRecord(100_000)
	body, err := EncodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("host record of 100,000 tenants: %d bytes gzipped, %d bytes of JSON", len(body), len(js))
	if 4*len(body) > MaxRecordBytes || 4*len(js) > MaxRecordExpanded || 4*len(rec.Tenants) > MaxRecordTenants {
		t.Errorf("limits %d gzipped, %d expanded, %d tenants leave less than four times a 100,000-tenant record (%d, %d)",
			MaxRecordBytes, MaxRecordExpanded, MaxRecordTenants, len(body), len(js))
	}
	got, err := decodeRecord(bytes.NewReader(body), int64(len(body)), rec.Host)
	if err != nil {
		t.Fatalf("decode the 100,000-tenant record: %v", err)
	}
	if !reflect.DeepEqual(got.Tenants, rec.Tenants) || got.Host != rec.Host || got.Version != rec.Version || !got.At.Equal(rec.At) {
		t.Errorf("the streamed decoder does not give back the record written")
	}
}

// hostileRecord streams a gzipped record made by write through a pipe, so
// that a record of hundreds of megabytes costs the test no memory. stop
// must be called once the reader is done with it.
func hostileRecord(level int, write func(w *bufio.Writer)) (r io.Reader, stop func()) {
	pr, pw := io.Pipe()
	go func() {
		zw, _ := gzip.NewWriterLevel(pw, level)
		bw := bufio.NewWriterSize(zw, 64<<10)
		write(bw)
		err := bw.Flush()
		if err == nil {
			err = zw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr, func() { pr.CloseWithError(errors.New("reader done")) }
}

// tenantsJSON writes a valid record of host with n tenants, each entry
// padded by a reason of pad bytes.
func tenantsJSON(host string, n, pad int) func(w *bufio.Writer) {
	reason := strings.Repeat("r", pad)
	return func(w *bufio.Writer) {
		fmt.Fprintf(w, `{"host":%q,"version":"v1","tenants":[`, host)
		for i := range n {
			if i > 0 {
				w.WriteByte(',')
			}
			fmt.Fprintf(w, `{"n":"%08x-0000-4000-8000-%012x","s":"failed","e":%q,"l":%d,"r":%d}`, i, i, reason, i+7, i+7)
			if i%4096 == 0 {
				if err := w.Flush(); err != nil {
					return // the reader stopped
				}
			}
		}
		w.WriteString("]}\n")
	}
}

// gzipMember is text as one gzip member.
func gzipMember(t testing.TB, text string) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write([]byte(text)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bombRecord is a gzip bomb of valid JSON: a record of host whose tenants
// array repeats blocks times a block of 1,000 entries, each with a reason
// of pad bytes.
// Gzip members concatenated are one stream to a reader, so the block is
// compressed once and repeated: the test costs neither the time to
// compress hundreds of megabytes nor the memory to hold them.
func bombRecord(t testing.TB, host string, pad, blocks int) io.Reader {
	var block strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&block, `{"n":"%08x-0000-4000-8000-%012x","s":"failed","e":"%s","l":%d,"r":%d},`, i, i, strings.Repeat("x", pad), i+7, i+7)
	}
	head := gzipMember(t, fmt.Sprintf(`{"host":%q,"tenants":[`, host))
	body := gzipMember(t, block.String())
	tail := gzipMember(t, `{"n":"end","s":"failed"}]}`)
	parts := []io.Reader{bytes.NewReader(head)}
	for range blocks {
		parts = append(parts, bytes.NewReader(body))
	}
	return io.MultiReader(append(parts, bytes.NewReader(tail))...)
}

// A record over a limit is refused as it streams in, with one line that
// says which limit, that it is ignored, and what to do; a record that is
// not one says so the same way.
func TestReadRecordRefusesHostileRecords(t *testing.T) {
	chunk := strings.Repeat("ab", 500) // stored as it is, at NoCompression
	for _, tc := range []struct {
		name  string
		level int
		write func(w *bufio.Writer)
		want  string
	}{
		{"one huge value", gzip.BestCompression,
			tenantsJSON("web-1", 3, 2<<20), "holds a value over 1 MiB"},
		{"white space between entries", gzip.BestCompression, func(w *bufio.Writer) {
			w.WriteString(`{"host":"web-1","tenants":[`)
			for range 4 << 10 {
				w.WriteString(strings.Repeat(" ", 1<<10))
			}
			w.WriteString(`]}`)
		}, "holds a value over 1 MiB"},
		{"over the stored limit", gzip.NoCompression, func(w *bufio.Writer) {
			w.WriteString(`{"host":"web-1","version":"`)
			for range MaxRecordBytes/len(chunk) + 1000 {
				w.WriteString(chunk)
				w.WriteString(`","machine":"`)
			}
			w.WriteString(`"}`)
		}, "is over 24 MiB gzipped"},
		{"not JSON", gzip.BestSpeed, func(w *bufio.Writer) { w.WriteString("<html>") }, "is not a host record"},
		{"another host's", gzip.BestSpeed, tenantsJSON("web-2", 1, 0), "names host web-2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, stop := hostileRecord(tc.level, tc.write)
			defer stop()
			rec, err := decodeRecord(r, 0, "web-1")
			var refused *RecordError
			if !errors.As(err, &refused) {
				t.Fatalf("got record %v and error %v, want a *RecordError", rec != nil, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || !strings.HasPrefix(msg, "host record of web-1 ") ||
				!strings.Contains(msg, "ignored, its tenants are shown from their S3 prefixes; delete .litefleet/hosts/web-1/record.json.gz") ||
				strings.ContainsAny(msg, "\n\r") || len(msg) > 400 {
				t.Errorf("error %q, want one line with %q that says it is ignored and what to do", msg, tc.want)
			}
		})
	}

	// A gzip bomb of valid JSON, 256 MiB expanded.
	if _, err := decodeRecord(bombRecord(t, "web-1", 200, 900), 0, "web-1"); err == nil || !strings.Contains(err.Error(), "host record of web-1 is over 64 MiB uncompressed: ignored") {
		t.Errorf("a gzip bomb of valid JSON: %v, want it refused as over 64 MiB uncompressed", err)
	}

	// Small entries: the count is met first (45 MB).
	if _, err := decodeRecord(bombRecord(t, "web-1", 0, MaxRecordTenants/1000+1), 0, "web-1"); err == nil || !strings.Contains(err.Error(), "host record of web-1 lists over 500000 tenants: ignored") {
		t.Errorf("%d small entries: %v, want them refused as over %d tenants", MaxRecordTenants+1000, err, MaxRecordTenants)
	}

	// Not gzip at all, and a body cut short.
	if _, err := decodeRecord(strings.NewReader(`{"host":"web-1"}`), 0, "web-1"); err == nil || !strings.Contains(err.Error(), "is not gzip") {
		t.Errorf("plain JSON: %v, want it refused as not gzip", err)
	}
	body, _ := EncodeRecord(&Record{Host: "web-1", Tenants: []TenantRecord{{Name: "a", State: "sleeping"}}})
	if _, err := decodeRecord(io.MultiReader(bytes.NewReader(body[:len(body)/2]), errReader{}), 0, "web-1"); err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("a body that broke off: %v, want the read error, not a verdict on the record", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestMiB(t *testing.T) {
	for n, want := range map[int64]string{64 << 10: "64 KiB", 16 << 20: "16 MiB", 10695475: "10.2 MiB", 1536 << 20: "1536 MiB"} {
		if got := mib(n); got != want {
			t.Errorf("mib(%d) = %q, want %q", n, got, want)
		}
	}
}
