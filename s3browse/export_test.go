package s3browse

import (
	"context"

	"github.com/litefleet/litefleet/s3conn"
)

// ScanInRanges is Scan with pages of pageSize keys, cut into ranges of one
// page after the first, so that integration tests exercise the parallel
// listing on a small bucket.
func ScanInRanges(ctx context.Context, api s3conn.API, conn s3conn.Conn, pageSize int32, parallel int) ([]TenantSummary, error) {
	return scan(ctx, api, conn, scanOptions{pageSize: pageSize, parallel: parallel, rangePages: 1, firstPages: 1})
}
