// Package s3browse is litefleet's read-only view of a bucket: the S3
// connection settings, the tenant prefixes under databases/, and the
// restore points of one tenant. It knows S3, not the terminal UI.
package s3browse

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// DefaultPrefix is the folder in the bucket that holds one prefix per tenant.
const DefaultPrefix = "databases"

// DefaultRegion is used with a custom endpoint when no region is given, as
// Litestream does.
const DefaultRegion = "us-east-1"

// Conn holds where a fleet's replicas live and how to reach them.
// Credentials stay in AccessKeyID/SecretAccessKey and are never printed:
// use String for messages.
type Conn struct {
	Bucket   string
	Prefix   string // folder holding the tenant prefixes; DefaultPrefix when empty
	Region   string
	Endpoint string // custom S3 endpoint, e.g. http://127.0.0.1:7070
	// ForcePathStyle is on by default with a custom endpoint, as in Litestream.
	ForcePathStyle bool
	// Credentials; never encoded: a Conn inside a JSON answer stays secret.
	AccessKeyID     string `json:"-"`
	SecretAccessKey string `json:"-"`
}

// String describes the connection for messages, without credentials.
func (c Conn) String() string {
	s := "s3://" + c.Bucket + "/" + c.prefix()
	if c.Endpoint != "" {
		s += " at " + c.Endpoint
	}
	return s
}

func (c Conn) prefix() string {
	p := strings.Trim(c.Prefix, "/")
	if p == "" && c.Prefix == "" {
		return DefaultPrefix
	}
	return p
}

// TenantPath is the key prefix (without trailing slash) of a tenant's replica.
func (c Conn) TenantPath(tenant string) string {
	if p := c.prefix(); p != "" {
		return p + "/" + tenant
	}
	return tenant
}

// TenantsPrefix is the key prefix under which tenant prefixes are listed.
func (c Conn) TenantsPrefix() string {
	if p := c.prefix(); p != "" {
		return p + "/"
	}
	return ""
}

// URL is the s3:// URL of a tenant's replica, as litestream restore takes it.
func (c Conn) URL(tenant string) string {
	return "s3://" + c.Bucket + "/" + c.TenantPath(tenant)
}

// EffectiveRegion is the region requests are signed for.
func (c Conn) EffectiveRegion() string {
	if c.Region != "" {
		return c.Region
	}
	if r := os.Getenv("AWS_REGION"); r != "" && c.Endpoint == "" {
		return r
	}
	return DefaultRegion
}

// Validate checks the settings that need no network.
func (c Conn) Validate() error {
	if c.Bucket == "" {
		return errors.New("no bucket: pass -bucket NAME or set one in the -config file")
	}
	if strings.ContainsAny(c.Bucket, "/ \t\n") {
		return fmt.Errorf("bucket %q is not a bucket name: give the name alone, without s3:// or a path", c.Bucket)
	}
	if c.Endpoint != "" && !strings.HasPrefix(c.Endpoint, "http://") && !strings.HasPrefix(c.Endpoint, "https://") {
		return fmt.Errorf("endpoint %q has no scheme: write http://HOST:PORT or https://HOST", c.Endpoint)
	}
	return nil
}

// NewClient returns an S3 client for c. It honours AWS_CA_BUNDLE (a custom CA
// is added to the system roots), the standard AWS credential chain when c
// has no keys, and fails requests fast enough for an operator to see why.
// Every request attempt it makes is counted (RequestCounts).
func NewClient(ctx context.Context, c Conn) (*s3.Client, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	httpClient := awshttp.NewBuildableClient().WithDialerOptions(func(d *net.Dialer) {
		d.Timeout = 5 * time.Second
	}).WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConnsPerHost = 64
		tr.ResponseHeaderTimeout = 30 * time.Second
	})
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(c.EffectiveRegion()),
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 3
				o.MaxBackoff = 500 * time.Millisecond
			})
		}),
	}
	if c.AccessKeyID != "" && c.SecretAccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, countRequests)
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
			o.UsePathStyle = true
			// Custom endpoints rarely support the SDK's default checksums.
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		} else {
			o.UsePathStyle = c.ForcePathStyle
		}
	}), nil
}

// Check makes one cheap request to prove the bucket exists and the
// credentials may list it, and turns the usual failures into one line that
// says what to check. It gives up after timeout.
func Check(ctx context.Context, client *s3.Client, c Conn, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket:  aws.String(c.Bucket),
		Prefix:  aws.String(c.TenantsPrefix()),
		MaxKeys: aws.Int32(1),
	})
	if err != nil {
		return Explain(err, c)
	}
	return nil
}

// CheckTenant is Check for credentials confined to one tenant: it lists
// PREFIX/TENANT/ only, which a tenant's policy allows, where Check lists
// every tenant's folder, which it must not.
func CheckTenant(ctx context.Context, client *s3.Client, c Conn, tenant string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	prefix := c.TenantPath(tenant) + "/"
	_, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket:  aws.String(c.Bucket),
		Prefix:  aws.String(prefix),
		MaxKeys: aws.Int32(1),
	})
	if err != nil {
		return ExplainKey(err, c, prefix)
	}
	return nil
}

// Explain turns an S3 error into a one-line message naming what to check.
// The original error stays wrapped for errors.Is/As.
func Explain(err error, c Conn) error { return ExplainKey(err, c, "") }

// ExplainKey is Explain for a request about key (an object key or a listing
// prefix): a refusal names the tenant the key belongs to.
func ExplainKey(err error, c Conn, key string) error {
	if err == nil {
		return nil
	}
	var denied *AccessDeniedError
	if errors.As(err, &denied) {
		return err // explained already
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NoSuchBucket":
			return fmt.Errorf("bucket %q does not exist%s: create it or check -bucket: %w", c.Bucket, at(c), errShort(err))
		case "AccessDenied":
			// The signature was good: the credential's policy said no.
			return &AccessDeniedError{URL: c.deniedURL(key), KeyID: c.keyID(), Err: err}
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden", "InvalidToken", "ExpiredToken":
			return fmt.Errorf("S3 refused the credentials for bucket %q%s (%s): check access-key-id/secret-access-key in the config or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_PROFILE: %w", c.Bucket, at(c), apiErr.ErrorCode(), errShort(err))
		}
	}
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) {
		switch respErr.HTTPStatusCode() {
		case http.StatusNotFound:
			return fmt.Errorf("bucket %q does not exist%s: create it or check -bucket: %w", c.Bucket, at(c), errShort(err))
		case http.StatusForbidden, http.StatusUnauthorized:
			return fmt.Errorf("S3 refused the credentials for bucket %q%s: check access-key-id/secret-access-key in the config or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_PROFILE: %w", c.Bucket, at(c), errShort(err))
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("S3%s did not answer in time: check -endpoint, the network and that the server is up: %w", at(c), errShort(err))
	}
	var netErr net.Error
	var opErr *net.OpError
	if errors.As(err, &opErr) || errors.As(err, &netErr) {
		return fmt.Errorf("cannot reach S3%s: check -endpoint and that the server is running: %w", at(c), errShort(err))
	}
	if strings.Contains(err.Error(), "failed to retrieve credentials") || strings.Contains(err.Error(), "no EC2 IMDS role found") {
		return fmt.Errorf("no S3 credentials found: set access-key-id/secret-access-key in the -config file, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE: %w", errShort(err))
	}
	return fmt.Errorf("S3 request to bucket %q%s failed: %w", c.Bucket, at(c), err)
}

// AccessDeniedError is S3 refusing a correctly signed request: the
// credential's policy does not allow it. It names where and which key id
// (a public identifier; the secret is never printed), so that the operator
// knows whose policy to read. Every command prints it the same way.
type AccessDeniedError struct {
	URL   string // s3://BUCKET/PREFIX/TENANT, or the part of the bucket asked for
	KeyID string // empty when the AWS chain supplied credentials litefleet cannot name
	Err   error
}

func (e *AccessDeniedError) Error() string {
	key := "credentials from the AWS chain"
	if e.KeyID != "" {
		key = "key " + Printable(e.KeyID)
	}
	return fmt.Sprintf("access denied to %s (%s): check that credential's policy", Printable(e.URL), key)
}

func (e *AccessDeniedError) Unwrap() error { return e.Err }

// IsAccessDenied reports whether err is S3 refusing a request by policy
// (AccessDenied), as opposed to refusing the credentials themselves.
func IsAccessDenied(err error) bool {
	if _, ok := errors.AsType[*AccessDeniedError](err); ok {
		return true
	}
	api, ok := errors.AsType[smithy.APIError](err)
	return ok && api.ErrorCode() == "AccessDenied"
}

// deniedURL is what a refused request was about: the tenant's replica when
// key lies under a tenant prefix, else the key itself, else the folder of
// tenants.
func (c Conn) deniedURL(key string) string {
	if key == "" {
		return strings.TrimSuffix("s3://"+c.Bucket+"/"+c.prefix(), "/")
	}
	if rest, ok := strings.CutPrefix(key, c.TenantsPrefix()); ok {
		if tenant, _, _ := strings.Cut(rest, "/"); tenant != "" {
			return c.URL(tenant)
		}
	}
	return strings.TrimSuffix("s3://"+c.Bucket+"/"+key, "/")
}

// keyID is the access key id requests are signed with, when litefleet can
// tell: the Conn's own, or the environment's (first in the AWS chain).
func (c Conn) keyID() string {
	if c.AccessKeyID != "" && c.SecretAccessKey != "" {
		return c.AccessKeyID
	}
	return os.Getenv("AWS_ACCESS_KEY_ID")
}

func at(c Conn) string {
	if c.Endpoint == "" {
		return ""
	}
	return " at " + c.Endpoint
}

// shortErr keeps the wrapped chain but prints only the innermost cause: the
// SDK's full message repeats the operation and request id at length.
type shortErr struct{ err error }

func (e shortErr) Error() string {
	msg := e.err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && i+2 < len(msg) {
		// Keep "api error Code: message" readable.
		if j := strings.Index(msg, "api error "); j >= 0 {
			return msg[j:]
		}
		return msg[i+2:]
	}
	return msg
}

func (e shortErr) Unwrap() error { return e.err }

func errShort(err error) error { return shortErr{err} }
