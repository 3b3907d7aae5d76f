package s3conn

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/smithy-go"
)

// A refused request is one line naming the tenant's replica and the key
// id, never the secret; other codes keep their own wording.
func TestExplainAccessDenied(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	denied := fmt.Errorf("operation error S3: ListObjectsV2: %w", &smithy.GenericAPIError{Code: "AccessDenied", Message: "Access Denied."})
	c := Conn{Bucket: "fleet", Prefix: DefaultPrefix, Endpoint: "http://127.0.0.1:1", AccessKeyID: "AKIATENANTA", SecretAccessKey: "very-secret-a"}
	tests := []struct {
		key  string
		want string
	}{
		{"databases/tenant-b/", "access denied to s3://fleet/databases/tenant-b (key AKIATENANTA): check that credential's policy"},
		{"databases/tenant-b/0000/0000000000000001-0000000000000001.ltx", "access denied to s3://fleet/databases/tenant-b (key AKIATENANTA): check that credential's policy"},
		{"", "access denied to s3://fleet/databases (key AKIATENANTA): check that credential's policy"},
		{".litefleet/hosts/h1/heartbeat.json", "access denied to s3://fleet/.litefleet/hosts/h1/heartbeat.json (key AKIATENANTA): check that credential's policy"},
	}
	for _, tt := range tests {
		err := ExplainKey(denied, c, tt.key)
		if err.Error() != tt.want {
			t.Errorf("key %q: %q, want %q", tt.key, err, tt.want)
		}
		if _, ok := errors.AsType[*AccessDeniedError](err); !ok || !errors.Is(err, denied) {
			t.Errorf("key %q: the refusal and its cause are not kept: %#v", tt.key, err)
		}
		// Wrapped again on the way up, it stays as it is.
		if again := Explain(fmt.Errorf("tenant b: %w", err), c); !strings.HasSuffix(again.Error(), tt.want) || strings.Count(again.Error(), "access denied") != 1 {
			t.Errorf("explained twice: %q", again)
		}
	}

	// Tenants at the bucket root; a key from the environment; an unnamed chain.
	root := Conn{Bucket: "fleet", Prefix: "/"}
	if got := ExplainKey(denied, root, "tenant-b/lock.json").Error(); !strings.HasPrefix(got, "access denied to s3://fleet/tenant-b (credentials from the AWS chain)") {
		t.Errorf("root prefix, chain: %q", got)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENV")
	if got := Explain(denied, root).Error(); got != "access denied to s3://fleet (key AKIAFROMENV): check that credential's policy" {
		t.Errorf("env key: %q", got)
	}

	// Bad keys are not a policy matter: the old wording stays.
	bad := &smithy.GenericAPIError{Code: "InvalidAccessKeyId", Message: "no such key"}
	if got := Explain(bad, c).Error(); !strings.Contains(got, "S3 refused the credentials") || strings.Contains(got, "AKIATENANTA") {
		t.Errorf("InvalidAccessKeyId: %q", got)
	}
	for _, err := range []error{ExplainKey(denied, c, "databases/x/"), Explain(bad, c)} {
		if strings.Contains(err.Error(), "very-secret-a") || strings.Contains(err.Error(), "\n") {
			t.Errorf("leaks the secret or spans lines: %q", err)
		}
	}
}
