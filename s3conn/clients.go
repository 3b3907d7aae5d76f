package s3conn

import (
	"context"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Clients hands out one S3 client per distinct endpoint, region, path
// style and credential (the one cache of clients: the engine's and the
// commands'): tenants that share keys share a client and its
// connections, and tenants with their own keys never sign with another's.
// Safe for concurrent use; the zero value is ready.
type Clients struct {
	mu sync.Mutex
	m  map[clientKey]*s3.Client
}

type clientKey struct {
	endpoint, region string
	pathStyle        bool
	keyID, secret    string
}

// For returns the client for c, making it on first use. The client is
// made outside the lock, so that one slow construction does not hold up
// tenants of other credentials; of two made at once, the first stored
// wins and the other is dropped.
func (cs *Clients) For(ctx context.Context, c Conn) (*s3.Client, error) {
	k := clientKey{c.Endpoint, c.EffectiveRegion(), c.ForcePathStyle, c.AccessKeyID, c.SecretAccessKey}
	cs.mu.Lock()
	cl, ok := cs.m[k]
	cs.mu.Unlock()
	if ok {
		return cl, nil
	}
	cl, err := NewClient(ctx, c)
	if err != nil {
		return nil, err
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if old, ok := cs.m[k]; ok {
		return old, nil
	}
	if cs.m == nil {
		cs.m = map[clientKey]*s3.Client{}
	}
	cs.m[k] = cl
	return cl, nil
}

// Len is how many distinct clients were made.
func (cs *Clients) Len() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.m)
}
