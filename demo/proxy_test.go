package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/superfly/ltx"
)

// putLTX uploads an LTX header from minTXID through the proxy, and says
// when the upload got its answer.
func putLTX(t *testing.T, proxy string, minTXID ltx.TXID) <-chan struct{} {
	t.Helper()
	hdr := ltx.Header{Version: ltx.Version, PageSize: 4096, Commit: 1, MinTXID: minTXID, MaxTXID: minTXID, Timestamp: time.Now().UnixMilli()}
	b, err := hdr.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequest(http.MethodPut, proxy+"/demo-fleet/databases/t/0000/x.ltx", bytes.NewReader(b))
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	return done
}

// The lagging tenant's first LTX file (its snapshot, from TXID 1) passes
// the delay proxy at once, so the tenant starts within seconds as the
// README says; later files are held until released (issue 20 item 20).
func TestDelayProxyPassesTheFirstUpload(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer upstream.Close()
	proxy, release, stop, err := startDelayProxy(upstream.URL, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	later := putLTX(t, proxy, 2)
	select {
	case <-putLTX(t, proxy, 1):
	case <-later:
		t.Fatal("a file from TXID 2 passed an hour's delay")
	case <-time.After(time.Minute):
		t.Fatal("the first LTX file (TXID 1) is held by the proxy")
	}
	select {
	case <-later:
		t.Fatal("a file from TXID 2 passed an hour's delay")
	default:
	}
	release()
	<-later
}
