// Package s3conn is litefleet's connection to a bucket: the settings
// (Conn), the clients (one per credential, timeouts, a CA bundle), the
// requests counted, and the one explanation of every S3 failure (Explain).
// Every reader and writer of S3 goes through it.
package s3conn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"

	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/untrusted"
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
	return layout.TenantPath(c.prefix(), tenant)
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

// Validate checks the settings that need no network: the bucket name by
// S3's rules, the prefix, and the endpoint's scheme.
func (c Conn) Validate() error {
	if c.Bucket == "" {
		return errors.New("no bucket: pass -bucket NAME or set one in the -config file")
	}
	if err := CheckBucketName(c.Bucket); err != nil {
		return err
	}
	if err := CheckPrefix(c.Prefix); err != nil {
		return err
	}
	if c.Endpoint != "" && !strings.HasPrefix(c.Endpoint, "http://") && !strings.HasPrefix(c.Endpoint, "https://") {
		return fmt.Errorf("endpoint %q has no scheme: write http://HOST:PORT or https://HOST", c.Endpoint)
	}
	return nil
}

// CheckBucketName checks a bucket name by S3's rules for general purpose
// buckets, so that a typo fails here in one line rather than as a long
// SDK error from the server.
func CheckBucketName(name string) error {
	bad := func(why string) error {
		return fmt.Errorf("bucket %s is not a valid S3 bucket name: %s", strconv.QuoteToGraphic(name), why)
	}
	if strings.HasPrefix(name, "s3://") || strings.ContainsRune(name, '/') {
		return bad("give the name alone, without s3:// or a path")
	}
	if n := len(name); n < 3 || n > 63 {
		return bad(fmt.Sprintf("it is %d characters long; a bucket name has 3 to 63", n))
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-') {
			return bad(fmt.Sprintf("%q is not allowed; use lower-case letters, digits, '.' and '-'", r))
		}
	}
	alnum := func(b byte) bool { return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' }
	switch {
	case !alnum(name[0]) || !alnum(name[len(name)-1]):
		return bad("it must start and end with a letter or a digit")
	case strings.Contains(name, ".."):
		return bad("it has two periods in a row")
	case net.ParseIP(name) != nil:
		return bad("it is an IP address")
	}
	for _, p := range []string{"xn--", "sthree-", "amzn-s3-demo-"} {
		if strings.HasPrefix(name, p) {
			return bad(fmt.Sprintf("names starting with %q are reserved", p))
		}
	}
	for _, suf := range []string{"-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"} {
		if strings.HasSuffix(name, suf) {
			return bad(fmt.Sprintf("names ending in %q are reserved", suf))
		}
	}
	return nil
}

// CheckPrefix checks the folder that holds the tenant prefixes: relative
// (no leading '/'), no empty, "." or ".." part, nothing unprintable. The
// empty prefix means DefaultPrefix, and "/" the bucket's root. The same
// rule holds for -prefix, a config file's replica path and :prefix, so that
// no spelling reaches another tenant's keys, or keys outside the fleet.
func CheckPrefix(p string) error {
	if p == "" || p == "/" {
		return nil
	}
	bad := func(why string) error {
		return fmt.Errorf("prefix %s %s: write a folder such as %s", strconv.QuoteToGraphic(p), why, DefaultPrefix)
	}
	if strings.HasPrefix(p, "/") {
		return bad("starts with '/' (keys are relative to the bucket)")
	}
	for _, part := range strings.Split(strings.TrimSuffix(p, "/"), "/") {
		switch {
		case part == "":
			return bad("has an empty part ('//')")
		case part == "." || part == "..":
			return bad(fmt.Sprintf("has a %q part", part))
		case !isPrintable(part) || strings.ContainsRune(part, '\\'):
			return bad("has a character that is not printable, or '\\'")
		}
	}
	return nil
}

// ResponseTimeout bounds how long S3 may take to start answering one
// attempt of a request.
const ResponseTimeout = 6 * time.Second

// UploadResponseTimeout bounds how long S3 may take to answer an upload
// sent with ForUploads. A replicator's uploads have a deadline of their own
// (the time its claims are sure to hold); a slow server that takes seconds
// to store an object must not fail them at ResponseTimeout.
const UploadResponseTimeout = 30 * time.Second

var uploadHTTP = sync.OnceValue(func() *awshttp.BuildableClient { return newHTTPClient(UploadResponseTimeout) })

// ForUploads is a per-request option for PutObject and multipart uploads:
// the request waits up to UploadResponseTimeout for S3's answer.
func ForUploads(o *s3.Options) { o.HTTPClient = uploadHTTP() }

func newHTTPClient(responseTimeout time.Duration) *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().WithDialerOptions(func(d *net.Dialer) {
		d.Timeout = 5 * time.Second
	}).WithTransportOptions(func(tr *http.Transport) {
		// A process replicating thousands of tenants shares one client per
		// credential: bound its sockets, which count against the
		// descriptor budget; requests beyond them wait their turn.
		tr.MaxConnsPerHost = 48
		tr.MaxIdleConnsPerHost = 16
		tr.ResponseHeaderTimeout = responseTimeout
		tr.TLSHandshakeTimeout = 5 * time.Second
	})
}

// NewClient returns an S3 client for c. It honours AWS_CA_BUNDLE (a custom CA
// is added to the system roots), the standard AWS credential chain when c
// has no keys, and fails requests fast enough for an operator to see why.
// Every request attempt it makes is counted (RequestCounts).
func NewClient(ctx context.Context, c Conn) (*s3.Client, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	// An endpoint that accepts connections and never answers must be an
	// error within 15 s, retries included: S3 answers a request's headers
	// in well under a second, whatever the object's size.
	httpClient := newHTTPClient(ResponseTimeout)
	opts := []func(*config.LoadOptions) error{
		config.WithLogger(sdkLogger{}),
		config.WithRegion(c.EffectiveRegion()),
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 2
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

// sdkLogger sends the AWS SDK's own messages to slog at debug level. The
// SDK's default logger writes them to stderr, where "falling back to
// IMDSv1" and the like would cut into litefleet's output (and into the
// terminal UI) on any host without credentials; the error that follows
// says what matters.
type sdkLogger struct{}

func (sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	slog.Debug("aws sdk: "+fmt.Sprintf(format, v...), "level", string(c))
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

// Failure is the kind of trouble an S3 request ran into.
type Failure int

// The failures Classify tells apart.
const (
	FailureOther         Failure = iota // the request failed otherwise
	FailureNoBucket                     // the bucket does not exist
	FailureRefused                      // S3 refused the credentials
	FailureNoCredentials                // no credentials in the config or the AWS chain
	FailureUnreachable                  // no connection, or no answer in time
	FailureDenied                       // the credential's policy refused the request
)

// String names the failure in a few words, for a table's note.
func (f Failure) String() string {
	switch f {
	case FailureNoBucket:
		return "bucket does not exist"
	case FailureRefused:
		return "credentials refused"
	case FailureNoCredentials:
		return "no credentials found"
	case FailureUnreachable:
		return "unreachable"
	case FailureDenied:
		return "access denied"
	}
	return "request failed"
}

// Classify says what kind of failure err is. Only FailureUnreachable
// leaves S3 as it was, with the way to it broken: the one case where an
// older answer may stand in for the one that failed. A refused or missing
// credential, or a missing bucket, says the older answer is no longer
// known to hold.
func Classify(err error) Failure {
	var ex *explained
	if errors.As(err, &ex) {
		return ex.kind
	}
	if IsAccessDenied(err) {
		return FailureDenied
	}
	// Before the network: the credential chain's own requests (the EC2
	// metadata service) fail with network errors where there is none.
	if msg := err.Error(); strings.Contains(msg, "failed to retrieve credentials") || strings.Contains(msg, "no EC2 IMDS role found") {
		return FailureNoCredentials
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NoSuchBucket":
			return FailureNoBucket
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden", "InvalidToken", "ExpiredToken":
			return FailureRefused
		}
	}
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) {
		switch respErr.HTTPStatusCode() {
		case http.StatusNotFound:
			return FailureNoBucket
		case http.StatusForbidden, http.StatusUnauthorized:
			return FailureRefused
		}
	}
	var netErr net.Error
	var opErr *net.OpError
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &opErr) || errors.As(err, &netErr) {
		return FailureUnreachable
	}
	return FailureOther
}

// explained is an error Explain has worded; explaining it again keeps it.
type explained struct {
	msg  string
	kind Failure
	err  error
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.err }

// Explained is an error worded by its caller (a reader of S3 that found the
// answer wrong), of the given kind, that Explain passes on as it is.
func Explained(kind Failure, err error, msg string) error {
	return &explained{kind: kind, err: err, msg: msg}
}

// Explain turns an S3 error into a one-line message naming what to check.
// The original error stays wrapped for errors.Is/As, and an error already
// explained (wrapped in more context or not) is returned as it is.
func Explain(err error, c Conn) error { return ExplainKey(err, c, "") }

// ExplainKey is Explain for a request about key (an object key or a listing
// prefix): a refusal by policy names the tenant the key belongs to.
func ExplainKey(err error, c Conn, key string) error {
	if err == nil {
		return nil
	}
	var ex *explained
	var denied *AccessDeniedError
	if errors.As(err, &ex) || errors.As(err, &denied) {
		return err
	}
	kind := Classify(err)
	var msg string
	switch kind {
	case FailureDenied:
		// The signature was good: the credential's policy said no.
		return &AccessDeniedError{URL: c.deniedURL(key), KeyID: c.keyID(), Err: err}
	case FailureNoBucket:
		msg = fmt.Sprintf("bucket %q does not exist%s: create it or check -bucket: %v", c.Bucket, At(c), errShort(err))
	case FailureRefused:
		code := ""
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) {
			code = " (" + apiErr.ErrorCode() + ")"
		}
		msg = fmt.Sprintf("S3 refused the credentials for bucket %q%s%s: check access-key-id/secret-access-key in the config or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_PROFILE: %v", c.Bucket, At(c), code, errShort(err))
	case FailureNoCredentials:
		msg = fmt.Sprintf("no S3 credentials found: set access-key-id/secret-access-key in the -config file, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE: %v", errShort(err))
	case FailureUnreachable:
		var timeout net.Error
		if errors.Is(err, context.DeadlineExceeded) {
			msg = fmt.Sprintf("S3%s did not answer in time: check -endpoint, the network and that the server is up: %v", At(c), errShort(err))
		} else if errors.As(err, &timeout) && timeout.Timeout() {
			msg = fmt.Sprintf("S3%s did not answer within %s: check -endpoint, the network and that the server is up: %v", At(c), ResponseTimeout, errShort(err))
		} else {
			msg = fmt.Sprintf("cannot reach S3%s: check -endpoint and that the server is running: %v", At(c), errShort(err))
		}
	default:
		msg = fmt.Sprintf("S3 request to bucket %q%s failed: %v", c.Bucket, At(c), err)
	}
	return &explained{msg: msg, kind: kind, err: err}
}

// Why is the explanation of err alone, without the context wrapped around
// it on its way up (which listing, which page): the line that says what to
// check, for a summary.
func Why(err error, c Conn) error {
	var ex *explained
	if errors.As(err, &ex) {
		return ex
	}
	return Explain(err, c)
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
		key = "key " + untrusted.Printable(e.KeyID)
	}
	return fmt.Sprintf("access denied to %s (%s): check that credential's policy", untrusted.Printable(e.URL), key)
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

// At is " at ENDPOINT" for messages, "" for AWS's own endpoint.
func At(c Conn) string {
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

// isPrintable says whether untrusted.Printable would show s as it is.
func isPrintable(s string) bool { return s == "" || untrusted.Printable(s) == s }
