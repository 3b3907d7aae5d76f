package s3browse

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/litefleet/litefleet/s3conn"
)

// A listing page over MaxListPageBytes is refused while it is read (a
// chunked answer, which has no length) or before (an announced length):
// one line that says what to check, and the client stops reading, so
// the server sends little more than the limit of what would be 1 GiB.
func TestListingPageOverLimit(t *testing.T) {
	for _, announced := range []bool{false, true} {
		t.Run(fmt.Sprintf("announced length %v", announced), func(t *testing.T) {
			var sent atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/xml")
				if announced {
					w.Header().Set("Content-Length", fmt.Sprint(1<<30))
				}
				entry := fmt.Sprintf("<Contents><Key>databases/t/%s</Key><Size>1</Size><LastModified>2026-12-07T08:00:00Z</LastModified></Contents>", strings.Repeat("k", 900))
				chunk := []byte(strings.Repeat(entry, 64))
				n, err := fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>bkt</Name><IsTruncated>false</IsTruncated>`)
				sent.Add(int64(n))
				for err == nil && sent.Load() < 1<<30 {
					n, err = w.Write(chunk)
					sent.Add(int64(n))
				}
			}))
			defer srv.Close()
			conn := s3conn.Conn{Bucket: "bkt", Endpoint: srv.URL, AccessKeyID: "id", SecretAccessKey: "secret"}
			client, err := s3conn.NewClient(context.Background(), conn)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Scan(context.Background(), client, conn)
			want := "list databases/ (page 1): S3 at " + srv.URL + " answered with over 16 MiB for one page of at most 1000 keys (under 4 MiB): refused; check that the endpoint is an S3 server"
			if err == nil || s3conn.Why(err, conn).Error() != want {
				t.Fatalf("scan: %v, want %q", err, want)
			}
			srv.CloseClientConnections()
			if n := sent.Load(); n > 3*MaxListPageBytes {
				t.Errorf("the server sent %d bytes before the client stopped reading, want about %d at most", n, MaxListPageBytes)
			}
		})
	}
}
