package hosts

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// FuzzDecodeBeat: a heartbeat's bytes are untrusted; whatever decodes
// encodes back to the same heartbeat.
func FuzzDecodeBeat(f *testing.F) {
	b, _ := json.Marshal(Heartbeat{Host: "h1", Instance: "i", Machine: "m", PID: 7, Version: "v", Started: time.Unix(1, 0).UTC(), At: time.Unix(2, 0).UTC(), Seq: 9})
	f.Add(b)
	f.Add([]byte(`{"host":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		hb, why := DecodeBeat(body)
		if why != "" {
			if hb != (Heartbeat{}) {
				t.Fatalf("unreadable heartbeat %q kept fields %+v", why, hb)
			}
			return
		}
		again, _ := json.Marshal(hb)
		back, why := DecodeBeat(again)
		if why != "" || back.Host != hb.Host || back.Seq != hb.Seq || !back.At.Equal(hb.At) {
			t.Fatalf("%q → %+v → %s → %+v (%s)", body, hb, again, back, why)
		}
	})
}

// FuzzDecodeRecord: a host record (gzipped JSON) is untrusted. Whatever
// the bytes, decoding ends with a record of the host asked for, within the
// limits, or with a *RecordError; never a panic.
func FuzzDecodeRecord(f *testing.F) {
	good, err := EncodeRecord(&Record{Host: "h1", At: time.Unix(5, 0).UTC(), Tenants: []TenantRecord{{Name: "t1", State: "replicating"}, {Name: "t2", Prefix: "/", State: "sleeping", Reason: "idle"}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	other, _ := EncodeRecord(&Record{Host: "h2"})
	f.Add(other)
	f.Add([]byte("\x1f\x8b not gzip"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := decodeRecord(bytes.NewReader(raw), int64(len(raw)), "h1")
		if err != nil {
			var re *RecordError
			if !errors.As(err, &re) {
				t.Fatalf("not a *RecordError: %v", err)
			}
			return
		}
		if r.Host != "h1" || len(r.Tenants) > MaxRecordTenants {
			t.Fatalf("decoded host %q with %d tenants", r.Host, len(r.Tenants))
		}
	})
}
