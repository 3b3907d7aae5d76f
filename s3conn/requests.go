package s3conn

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// RequestCount is how many S3 request attempts of one operation (and, for
// errors, one error code) this process has made.
type RequestCount struct {
	Op   string // the SDK's operation name: ListObjectsV2, PutObject, ...
	Code string // the error code; empty for the count of every attempt
	// Expected marks an answer of the protocol, not a failure: a 404 to a
	// GET or HEAD of an object that may not exist, a 412 to a conditional
	// write (see ExpectedAnswer). An alert on failures must not fire on
	// them: a clean first start gets several.
	Expected bool
	N        int64
}

// requests counts every attempt of every client NewClient makes, in the
// whole process: the replication engine, the host protocol, the fleet view
// and restores alike. Retries are attempts of their own.
var requests = &requestCounter{}

type requestKey struct {
	op, code string
	expected bool
}

type requestCounter struct {
	mu     sync.RWMutex
	counts map[requestKey]*atomic.Int64
}

func (c *requestCounter) add(op, code string, expected bool) {
	k := requestKey{op, code, expected}
	c.mu.RLock()
	n := c.counts[k]
	c.mu.RUnlock()
	if n == nil {
		c.mu.Lock()
		if n = c.counts[k]; n == nil {
			if c.counts == nil {
				c.counts = map[requestKey]*atomic.Int64{}
			}
			n = new(atomic.Int64)
			c.counts[k] = n
		}
		c.mu.Unlock()
	}
	n.Add(1)
}

// RequestCounts returns the process's S3 request attempts by operation,
// and its attempts answered with an error by operation and error code
// (Expected set on the protocol's answers, which are no failure), each
// sorted.
func RequestCounts() (attempts, failures []RequestCount) {
	requests.mu.RLock()
	for k, n := range requests.counts {
		rc := RequestCount{Op: k.op, Code: k.code, Expected: k.expected, N: n.Load()}
		if k.code == "" {
			attempts = append(attempts, rc)
		} else {
			failures = append(failures, rc)
		}
	}
	requests.mu.RUnlock()
	less := func(s []RequestCount) func(i, j int) bool {
		return func(i, j int) bool {
			if s[i].Op != s[j].Op {
				return s[i].Op < s[j].Op
			}
			if s[i].Code != s[j].Code {
				return s[i].Code < s[j].Code
			}
			return !s[i].Expected && s[j].Expected
		}
	}
	sort.Slice(attempts, less(attempts))
	sort.Slice(failures, less(failures))
	return attempts, failures
}

// countRequests is an API option of every client: a middleware at the
// front of the deserialize step, which runs once per attempt (the retry
// loop is in the finalize step, before it), so that retries are counted.
func countRequests(stack *middleware.Stack) error {
	return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("litefleetCountRequests",
		func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleDeserialize(ctx, in)
			op := awsmiddleware.GetOperationName(ctx)
			if op == "" {
				op = "unknown"
			}
			requests.add(op, "", false)
			if err != nil {
				code := errorCode(ctx, out, err)
				requests.add(op, code, ExpectedAnswer(op, code))
			}
			return out, md, err
		}), middleware.Before)
}

// codeShape bounds the error codes used as label values: codes come from
// the server, and a metric must not grow a series per odd message.
var codeShape = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// errorCode names a failed attempt: the S3 error code (NoSuchKey,
// AccessDenied, SlowDown, ...), else the HTTP status, else "network" or
// "canceled" when no answer came.
func errorCode(ctx context.Context, out middleware.DeserializeOutput, err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		if c := api.ErrorCode(); codeShape.MatchString(c) {
			return c
		}
	}
	var resp *awshttp.ResponseError
	if errors.As(err, &resp) && resp.HTTPStatusCode() > 0 {
		return strconv.Itoa(resp.HTTPStatusCode())
	}
	if r, ok := out.RawResponse.(*smithyhttp.Response); ok && r != nil && r.StatusCode >= http.StatusBadRequest {
		return strconv.Itoa(r.StatusCode)
	}
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return "canceled"
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return "network"
}

// ExpectedAnswer reports whether an error code is an answer the protocol
// gives in normal work rather than a failure: litefleet asks for objects
// that may not exist (a heartbeat, a claim, a host record, a manifest) and
// writes on a condition (If-None-Match, If-Match) that another host may
// have made false. A 404 to a GET or HEAD, and a 412 or 304 to any
// request (only a conditional one can get them), are such answers.
func ExpectedAnswer(op, code string) bool {
	switch code {
	case "PreconditionFailed", "412", "NotModified", "304":
		return true
	case "NoSuchKey", "NotFound", "404":
		return op == "GetObject" || op == "HeadObject"
	}
	return false
}
