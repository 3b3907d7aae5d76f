package s3conn

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestConnNeverPrintsCredentials: a Conn printed with %v or %+v, or encoded
// as JSON inside an answer, carries no credential.
func TestConnNeverPrintsCredentials(t *testing.T) {
	c := Conn{Bucket: "bkt", Endpoint: "http://127.0.0.1:1", AccessKeyID: "AKIASECRETID", SecretAccessKey: "very-secret"}
	b, err := json.Marshal(struct{ Conn Conn }{c})
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprint(c), string(b), c.URL("t")} {
		if strings.Contains(out, "AKIASECRETID") || strings.Contains(out, "very-secret") {
			t.Fatalf("credential printed: %s", out)
		}
	}
}

func TestCheckBucketName(t *testing.T) {
	for _, ok := range []string{"abc", "saas-backups", "demo-fleet", "a.b.c", "0ab", strings.Repeat("a", 63), "t-test-1234abcd"} {
		if err := CheckBucketName(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for name, why := range map[string]string{
		"Bad_Bucket!":           "not allowed",
		"ab":                    "3 to 63",
		strings.Repeat("a", 64): "3 to 63",
		"UPPER":                 "not allowed",
		"under_score":           "not allowed",
		"-dash":                 "start and end",
		"dash-":                 "start and end",
		"two..dots":             "two periods",
		"192.168.5.4":           "IP address",
		"xn--punycode":          "reserved",
		"sthree-bucket":         "reserved",
		"bucket-s3alias":        "reserved",
		"bucket--ol-s3":         "reserved",
		"s3://bucket":           "without s3://",
		"bucket/path":           "without s3://",
		"red\x1b[31m":           "not allowed",
	} {
		err := CheckBucketName(name)
		if err == nil || !strings.Contains(err.Error(), why) || strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "\x1b") {
			t.Errorf("%q: %v, want one line saying %q", name, err, why)
		}
	}
}

func TestCheckPrefix(t *testing.T) {
	for _, ok := range []string{"", "/", "databases", "databases/", "prod/tenants", "a.b", "..x"} {
		if err := CheckPrefix(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"../x", "..", "a/../b", "a/./b", "/abs", "/abs/", "a//b", "a/\x1b[31m", "a\\b", "a\nb"} {
		if err := CheckPrefix(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	c := Conn{Bucket: "abc", Prefix: "../x"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "prefix") {
		t.Errorf("Conn.Validate with prefix ../x: %v", err)
	}
}
