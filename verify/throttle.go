package verify

import (
	"context"
	"io"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/time/rate"
)

// NewBandwidth is a cap on what verification downloads, in bytes a
// second, shared by every verification given it (Options.Bandwidth): a
// host verifying its tenants in the background leaves its uplink's
// other direction, and the bucket's egress, to the application. A burst
// of a quarter of a second, at least 64 KiB, lets reads go by the chunk.
func NewBandwidth(bytesPerSecond int64) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(bytesPerSecond), int(max(bytesPerSecond/4, 64<<10)))
}

// throttled passes object bodies through a limiter.
type throttled struct {
	API
	lim *rate.Limiter
}

func (t throttled) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	out, err := t.API.GetObject(ctx, in, opts...)
	if err == nil && out.Body != nil {
		out.Body = &throttledBody{ReadCloser: out.Body, ctx: ctx, lim: t.lim}
	}
	return out, err
}

type throttledBody struct {
	io.ReadCloser
	ctx context.Context
	lim *rate.Limiter
}

func (b *throttledBody) Read(p []byte) (int, error) {
	if len(p) > b.lim.Burst() {
		p = p[:b.lim.Burst()]
	}
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		if werr := b.lim.WaitN(b.ctx, n); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}
