package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/benbjohnson/litestream"
	"github.com/superfly/ltx"

	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/s3conn"
)

// listedClient is a read-only litestream.ReplicaClient over one listing of
// a tenant (s3browse.Inspect), for Litestream's restore planner: LTXFiles
// returns what the listing holds, in the order and with the sizes and
// times (LastModified) that Litestream's S3 client would return.
type listedClient struct {
	api    s3conn.API
	conn   s3conn.Conn
	root   string
	levels map[int][]*ltx.FileInfo
}

var _ litestream.ReplicaClient = (*listedClient)(nil)

var errReadOnly = errors.New("listedClient is read-only")

func newListedClient(t *s3browse.Tenant, api s3conn.API, conn s3conn.Conn) *listedClient {
	c := &listedClient{api: api, conn: conn, root: conn.TenantPath(t.Name), levels: map[int][]*ltx.FileInfo{}}
	for _, l := range t.Levels {
		for _, f := range l.Files { // sorted by MinTXID, then MaxTXID: key order
			c.levels[l.Level] = append(c.levels[l.Level], &ltx.FileInfo{
				Level: f.Level, MinTXID: ltx.TXID(f.MinTXID), MaxTXID: ltx.TXID(f.MaxTXID),
				Size: f.Size, CreatedAt: f.ModifiedAt,
			})
		}
	}
	return c
}

func (c *listedClient) Type() string                  { return "s3" }
func (c *listedClient) Init(context.Context) error    { return nil }
func (c *listedClient) SetLogger(logger *slog.Logger) {}

func (c *listedClient) LTXFiles(_ context.Context, level int, seek ltx.TXID, _ bool) (ltx.FileIterator, error) {
	var out []*ltx.FileInfo
	for _, f := range c.levels[level] {
		if f.MinTXID >= seek {
			cp := *f
			out = append(out, &cp)
		}
	}
	return ltx.NewFileInfoSliceIterator(out), nil
}

func (c *listedClient) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	rng := fmt.Sprintf("bytes=%d-", offset)
	if size > 0 {
		rng = fmt.Sprintf("bytes=%d-%d", offset, offset+size-1)
	}
	key := ltxKey(c.root, level, minTXID, maxTXID)
	out, err := c.api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(c.conn.Bucket), Key: aws.String(key), Range: aws.String(rng)})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, s3conn.ExplainKey(err, c.conn, key))
	}
	return out.Body, nil
}

func (c *listedClient) WriteLTXFile(context.Context, int, ltx.TXID, ltx.TXID, io.Reader) (*ltx.FileInfo, error) {
	return nil, errReadOnly
}

func (c *listedClient) DeleteLTXFiles(context.Context, []*ltx.FileInfo) error { return errReadOnly }
func (c *listedClient) DeleteAll(context.Context) error                       { return errReadOnly }
