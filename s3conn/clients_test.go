package s3conn

import (
	"context"
	"sync"
	"testing"
)

// TestClientsOnePerCredential: the one client cache (the engine's and the
// commands') shares a client between tenants of one endpoint, region and
// key, never across keys, and makes one client under concurrent first use.
func TestClientsOnePerCredential(t *testing.T) {
	ctx := context.Background()
	base := Conn{Bucket: "bkt", Endpoint: "http://127.0.0.1:1", Region: "us-east-1", ForcePathStyle: true, AccessKeyID: "k1", SecretAccessKey: "s1"}
	var cs Clients
	var wg sync.WaitGroup
	got := make([]any, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := cs.For(ctx, base)
			if err != nil {
				t.Error(err)
			}
			got[i] = c
		}()
	}
	wg.Wait()
	for _, c := range got[1:] {
		if c != got[0] {
			t.Fatal("one credential got two clients")
		}
	}
	other := base
	other.Bucket = "another-bucket" // the bucket is per request, not per client
	if c, _ := cs.For(ctx, other); c != got[0] || cs.Len() != 1 {
		t.Fatalf("another bucket of the same credential: %d clients", cs.Len())
	}
	for _, change := range []func(*Conn){
		func(c *Conn) { c.SecretAccessKey = "s2" },
		func(c *Conn) { c.AccessKeyID = "k2" },
		func(c *Conn) { c.Region = "eu-west-1" },
		func(c *Conn) { c.Endpoint = "http://127.0.0.1:2" },
		func(c *Conn) { c.ForcePathStyle = false },
	} {
		c := base
		change(&c)
		n := cs.Len()
		cl, err := cs.For(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if cl == got[0] || cs.Len() != n+1 {
			t.Errorf("%+v shares a client with another credential or place", c)
		}
	}
}
