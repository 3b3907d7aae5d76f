package s3browse

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/untrusted"
)

// Stray is an LTX file outside the tenant's lineage (see hosts.Lineage): a
// deposed host's upload that landed after another host took the history
// on. Restores skip it; the tenant's holder moves it to the archive.
type Stray struct {
	Key        string `json:"key"`
	Level      int    `json:"level"`
	MinTXID    uint64 `json:"min_txid"`
	MaxTXID    uint64 `json:"max_txid"`
	Generation int64  `json:"generation"`
	Host       string `json:"host,omitempty"` // untrusted: print with untrusted.Printable
	// Why names the segment of the lineage that makes it stray.
	Why string `json:"why"`
}

// LineageReport is what a tenant's lineage says of its files.
type LineageReport struct {
	// Record is the tenant's lineage record (lineage.json), nil without one.
	Record *hosts.Lineage `json:"record,omitempty"`
	Error  string         `json:"error,omitempty"`
	// Checked is how many files' metadata were read; Unchecked how many
	// could be stray but were not looked at (over the limit).
	Checked   int     `json:"checked"`
	Unchecked int     `json:"unchecked,omitempty"`
	Strays    []Stray `json:"strays"`
}

// ReadLineage reads a tenant's lineage record; nil when it has none.
func ReadLineage(ctx context.Context, api s3conn.API, conn s3conn.Conn, tenant string) (*hosts.Lineage, error) {
	rec, err := hosts.ReadLineage(ctx, api, conn.Bucket, conn.TenantPath(tenant))
	if err != nil {
		return nil, s3conn.ExplainKey(err, conn, hosts.LineageKey(conn.TenantPath(tenant)))
	}
	return rec, nil
}

// FileLineage reads an object's lineage generation and host from its
// metadata. s3conn.API has no HEAD: a one-byte ranged GET returns the same
// headers. found is false when the object is gone.
func FileLineage(ctx context.Context, api s3conn.API, conn s3conn.Conn, key string) (gen int64, host string, found bool, err error) {
	out, err := api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(conn.Bucket), Key: aws.String(key), Range: aws.String("bytes=0-0")})
	if err != nil {
		if hosts.IsNotFound(err) {
			return 0, "", false, nil
		}
		return 0, "", false, fmt.Errorf("read the metadata of %s: %w", key, err)
	}
	out.Body.Close()
	return hosts.Generation(out.Metadata), out.Metadata[hosts.MetaHost], true, nil
}

// JudgeFiles reads the lineage of the files of a tenant that rec could make
// stray (one request each, at most limit of them, newest first; limit < 1
// for all) and returns the strays among them, and how many it left
// unchecked.
func JudgeFiles(ctx context.Context, api s3conn.API, conn s3conn.Conn, tenant string, rec *hosts.Lineage, files []LTXFile, limit int) (strays []Stray, checked, unchecked int, err error) {
	above, ok := rec.MaySeeStrays()
	if !ok {
		return nil, 0, 0, nil
	}
	var suspects []LTXFile
	for _, f := range files {
		if f.MaxTXID > above {
			suspects = append(suspects, f)
		}
	}
	slices.SortFunc(suspects, func(a, b LTXFile) int {
		return cmp.Or(cmp.Compare(b.MaxTXID, a.MaxTXID), cmp.Compare(b.Level, a.Level))
	})
	if limit > 0 && len(suspects) > limit {
		unchecked = len(suspects) - limit
		suspects = suspects[:limit]
	}
	root := conn.TenantPath(tenant)
	for _, f := range suspects {
		key := fmt.Sprintf("%s/%04x/%s-%s.ltx", root, f.Level, layout.TXIDHex(f.MinTXID), layout.TXIDHex(f.MaxTXID))
		gen, host, found, err := FileLineage(ctx, api, conn, key)
		if err != nil {
			return nil, checked, unchecked, s3conn.ExplainKey(err, conn, key)
		}
		checked++
		if !found {
			continue
		}
		if seg, ok := rec.Stray(gen, f.MaxTXID); ok {
			strays = append(strays, Stray{Key: key, Level: f.Level, MinTXID: f.MinTXID, MaxTXID: f.MaxTXID, Generation: gen, Host: host,
				Why: fmt.Sprintf("written in generation %d, after generation %d (host %s) continued the history from TXID %s", gen, seg.Generation, untrusted.Printable(seg.Host), layout.TXIDHex(seg.Since))})
		}
	}
	slices.SortFunc(strays, func(a, b Stray) int {
		return cmp.Or(cmp.Compare(a.Level, b.Level), cmp.Compare(a.MinTXID, b.MinTXID), cmp.Compare(a.MaxTXID, b.MaxTXID))
	})
	return strays, checked, unchecked, nil
}

// CheckLineage fills t.Lineage: the record, and the strays among the files
// it could make stray (at most limit looked at, newest first). Without a
// record, or with a single segment, nothing is requested beyond the
// record's GET.
func (t *Tenant) CheckLineage(ctx context.Context, api s3conn.API, conn s3conn.Conn, limit int) error {
	r := &LineageReport{Strays: []Stray{}}
	t.Lineage = r
	if !t.HasLineage {
		return nil
	}
	rec, err := ReadLineage(ctx, api, conn, t.Name)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		r.Error = err.Error()
		return nil
	}
	r.Record = rec
	var files []LTXFile
	for _, l := range t.Levels {
		files = append(files, l.Files...)
	}
	strays, checked, unchecked, err := JudgeFiles(ctx, api, conn, t.Name, rec, files, limit)
	r.Checked, r.Unchecked = checked, unchecked
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		r.Error = err.Error()
		return nil
	}
	if strays != nil {
		r.Strays = strays
	}
	return nil
}
