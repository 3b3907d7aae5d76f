package s3browse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithytime "github.com/aws/smithy-go/time"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// fastListDecoding is an option of ListObjectsV2 calls: it decodes a
// successful response with decodeListV2 instead of the SDK's generic XML
// decoder, whose tokens, namespaces and copies cost about 15 µs an object,
// more than the rest of Scan together. The SDK's own decoder still gets
// every response this one is not sure to read exactly as it would (an
// error, namespace prefixes, CDATA, a document of another shape): the
// result is the same, only sooner.
func fastListDecoding(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		sdk, ok := stack.Deserialize.Get(listDeserializerID)
		if !ok {
			return nil // nothing to stand in for: leave the stack as it is
		}
		_, err := stack.Deserialize.Swap(listDeserializerID, &listDeserializer{sdk: sdk})
		return err
	})
}

// listDeserializerID is the step of the SDK's operation deserializer.
const listDeserializerID = "OperationDeserializer"

type listDeserializer struct {
	sdk middleware.DeserializeMiddleware
}

func (*listDeserializer) ID() string { return listDeserializerID }

func (d *listDeserializer) HandleDeserialize(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (
	middleware.DeserializeOutput, middleware.Metadata, error,
) {
	out, md, err := next.HandleDeserialize(ctx, in)
	resp, ok := out.RawResponse.(*smithyhttp.Response)
	if err == nil && ok && resp.StatusCode >= 200 && resp.StatusCode < 300 {
		body, rerr := readBody(resp)
		resp.Body.Close()
		if rerr != nil {
			return out, md, &smithy.DeserializationError{Err: fmt.Errorf("failed to read response body, %w", rerr)}
		}
		if res, ok := decodeListV2(body); ok {
			out.Result = res
			return out, md, nil
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
	}
	// The SDK's deserializer, on what the transport already returned.
	return d.sdk.HandleDeserialize(ctx, in, middleware.DeserializeHandlerFunc(
		func(context.Context, middleware.DeserializeInput) (middleware.DeserializeOutput, middleware.Metadata, error) {
			return out, md, err
		}))
}

// MaxListPageBytes bounds one page of a listing as read from the server.
// A page of 1,000 keys of the longest kind (1,024 bytes, up to three times
// that URL-encoded) with S3's other fields is under 4 MiB; a larger answer
// is refused before it is read, or as soon as it is (a chunked one has no
// length), so that a broken or hostile server cannot make a listing hold
// gigabytes.
const MaxListPageBytes = 16 << 20

// errPageTooLarge says a listing page was over MaxListPageBytes.
var errPageTooLarge = errors.New("listing page over the size limit")

// readBody reads a response body whole, in one buffer of its announced
// length (a page of 1,000 keys is some 300 KB: io.ReadAll would copy it
// through a dozen growing buffers), and at most MaxListPageBytes of it.
func readBody(resp *smithyhttp.Response) ([]byte, error) {
	n := resp.ContentLength
	switch {
	case n > MaxListPageBytes:
		return nil, errPageTooLarge
	case n > 0:
		body := make([]byte, n)
		if _, err := io.ReadFull(resp.Body, body); err != nil {
			return nil, err
		}
		return body, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxListPageBytes+1))
	if err == nil && len(body) > MaxListPageBytes {
		return nil, errPageTooLarge
	}
	return body, err
}

// decodeListV2 decodes a ListObjectsV2 result: the fields the inventory
// reads (Contents' Key, Size and LastModified; CommonPrefixes; IsTruncated,
// NextContinuationToken, EncodingType, KeyCount, and the echoed Name,
// Prefix, Delimiter, StartAfter, ContinuationToken, MaxKeys), with the
// SDK's rules: element names match case-insensitively, text is taken as
// is with XML's five entities and character references resolved, numbers
// with strconv, times with smithy's ParseDateTime. It reports false for
// anything it does not read the way encoding/xml would: the caller then
// hands the document to the SDK.
func decodeListV2(b []byte) (*s3.ListObjectsV2Output, bool) {
	d := xmlDoc{b: b}
	name, empty, ok := d.root()
	if !ok || !strings.EqualFold(name, "ListBucketResult") {
		return nil, false
	}
	out := &s3.ListObjectsV2Output{}
	if empty {
		return out, d.end()
	}
	for {
		name, empty, ok := d.child(name)
		if !ok {
			return nil, false
		}
		if name == "" {
			return out, d.end()
		}
		switch {
		case strings.EqualFold(name, "Contents"):
			o, ok := d.object(name, empty)
			if !ok {
				return nil, false
			}
			out.Contents = append(out.Contents, o)
		case strings.EqualFold(name, "CommonPrefixes"):
			var p types.CommonPrefix
			ok := d.fields(name, empty, func(field string, empty bool) bool {
				if !strings.EqualFold(field, "Prefix") {
					return d.skip(field, empty)
				}
				v, ok := d.text(field, empty)
				p.Prefix = aws.String(v)
				return ok
			})
			if !ok {
				return nil, false
			}
			out.CommonPrefixes = append(out.CommonPrefixes, p)
		default:
			if !d.topField(out, name, empty) {
				return nil, false
			}
		}
	}
}

// topField decodes one scalar of ListBucketResult, or skips an element
// that is none of those the inventory reads.
func (d *xmlDoc) topField(out *s3.ListObjectsV2Output, name string, empty bool) bool {
	var dst **string
	switch {
	case strings.EqualFold(name, "IsTruncated"):
		v, ok := d.text(name, empty)
		t, err := strconv.ParseBool(v)
		out.IsTruncated = aws.Bool(t)
		return ok && err == nil
	case strings.EqualFold(name, "KeyCount"), strings.EqualFold(name, "MaxKeys"):
		v, ok := d.text(name, empty)
		n, err := strconv.ParseInt(v, 10, 32)
		if strings.EqualFold(name, "KeyCount") {
			out.KeyCount = aws.Int32(int32(n))
		} else {
			out.MaxKeys = aws.Int32(int32(n))
		}
		return ok && err == nil
	case strings.EqualFold(name, "EncodingType"):
		v, ok := d.text(name, empty)
		out.EncodingType = types.EncodingType(v)
		return ok
	case strings.EqualFold(name, "NextContinuationToken"):
		dst = &out.NextContinuationToken
	case strings.EqualFold(name, "ContinuationToken"):
		dst = &out.ContinuationToken
	case strings.EqualFold(name, "Name"):
		dst = &out.Name
	case strings.EqualFold(name, "Prefix"):
		dst = &out.Prefix
	case strings.EqualFold(name, "Delimiter"):
		dst = &out.Delimiter
	case strings.EqualFold(name, "StartAfter"):
		dst = &out.StartAfter
	default:
		return d.skip(name, empty)
	}
	v, ok := d.text(name, empty)
	*dst = aws.String(v)
	return ok
}

// object decodes one Contents element.
func (d *xmlDoc) object(name string, empty bool) (types.Object, bool) {
	var o types.Object
	ok := d.fields(name, empty, func(field string, empty bool) bool {
		switch {
		case strings.EqualFold(field, "Key"):
			v, ok := d.text(field, empty)
			o.Key = aws.String(v)
			return ok
		case strings.EqualFold(field, "Size"):
			v, ok := d.text(field, empty)
			n, err := strconv.ParseInt(v, 10, 64)
			o.Size = aws.Int64(n)
			return ok && err == nil
		case strings.EqualFold(field, "LastModified"):
			v, ok := d.text(field, empty)
			t, err := smithytime.ParseDateTime(v)
			o.LastModified = aws.Time(t)
			return ok && err == nil
		}
		return d.skip(field, empty)
	})
	return o, ok
}

// xmlDoc reads an XML document of elements and text, the subset S3
// listings use. Every method reports false on anything outside it.
type xmlDoc struct {
	b []byte
	i int
}

// root skips the prolog (XML declaration, comments, white space) and
// reads the root element's start tag.
func (d *xmlDoc) root() (name string, empty bool, ok bool) {
	for {
		d.space()
		switch {
		case d.has("<?"):
			// The XML declaration, checked as encoding/xml checks it; any
			// other processing instruction is the SDK's to read.
			j := d.i + 2
			for j < len(d.b) && (d.b[j] >= utf8.RuneSelf || isNameByte(d.b[j])) {
				j++
			}
			end := bytes.Index(d.b[j:], []byte("?>"))
			if string(d.b[d.i+2:j]) != "xml" || end < 0 {
				return "", false, false
			}
			decl := string(d.b[j : j+end])
			if v := procInst("version", decl); v != "" && v != "1.0" {
				return "", false, false
			}
			if e := procInst("encoding", decl); e != "" && !strings.EqualFold(e, "utf-8") {
				return "", false, false
			}
			d.i = j + end + 2
		case d.has("<!--"):
			if !d.comment() {
				return "", false, false
			}
		default:
			name, empty, end, ok := d.tag()
			return name, empty, ok && !end
		}
	}
}

// end checks that nothing but white space and comments follows the root.
func (d *xmlDoc) end() bool {
	for {
		d.space()
		if d.i == len(d.b) {
			return true
		}
		if !d.has("<!--") || !d.comment() {
			return false
		}
	}
}

// child reads the next child element's start tag within parent, skipping
// white space and comments; it returns "" at parent's end tag.
func (d *xmlDoc) child(parent string) (name string, empty bool, ok bool) {
	for {
		d.space()
		if d.has("<!--") {
			if !d.comment() {
				return "", false, false
			}
			continue
		}
		name, empty, end, ok := d.tag()
		switch {
		case !ok:
			return "", false, false
		case end:
			return "", false, name == parent
		}
		return name, empty, true
	}
}

// fields calls f with each child element of the element name (whose start
// tag was read; empty for <name/>) until its end tag.
func (d *xmlDoc) fields(name string, empty bool, f func(field string, empty bool) bool) bool {
	if empty {
		return true
	}
	for {
		field, fempty, ok := d.child(name)
		if !ok {
			return false
		}
		if field == "" {
			return true
		}
		if !f(field, fempty) {
			return false
		}
	}
}

// skip reads past the element name, whatever it holds but CDATA.
func (d *xmlDoc) skip(name string, empty bool) bool {
	if empty {
		return true
	}
	for {
		if _, ok := d.chars(); !ok {
			return false
		}
		if d.has("<!--") {
			if !d.comment() {
				return false
			}
			continue
		}
		child, cempty, end, ok := d.tag()
		switch {
		case !ok:
			return false
		case end:
			return child == name
		case !d.skip(child, cempty):
			return false
		}
	}
}

// text reads the text of the element name up to its end tag: it must hold
// text only.
func (d *xmlDoc) text(name string, empty bool) (string, bool) {
	if empty {
		return "", true
	}
	v, ok := d.chars()
	if !ok {
		return "", false
	}
	end, _, isEnd, ok := d.tag()
	return v, ok && isEnd && end == name
}

// chars reads character data up to the next '<', resolving references.
// Bytes encoding/xml would refuse or change (control characters, invalid
// UTF-8, a carriage return it would turn into a newline, "]]>") fail.
func (d *xmlDoc) chars() (string, bool) {
	start := d.i
	plain, bracket := true, false
	for ; d.i < len(d.b) && d.b[d.i] != '<'; d.i++ {
		c := d.b[d.i]
		switch {
		case c == '&' || c >= utf8.RuneSelf:
			plain = false
		case c == ']':
			bracket = true
		case c < 0x20 && c != '\t' && c != '\n':
			return "", false
		}
	}
	if d.i == len(d.b) {
		return "", false
	}
	raw := d.b[start:d.i]
	if bracket && bytes.Contains(raw, []byte("]]>")) {
		return "", false // "]]>" outside CDATA: encoding/xml refuses it
	}
	if plain {
		return string(raw), true
	}
	if !utf8.Valid(raw) || bytes.ContainsRune(raw, 0xFFFE) || bytes.ContainsRune(raw, 0xFFFF) {
		return "", false
	}
	if bytes.IndexByte(raw, '&') < 0 {
		return string(raw), true
	}
	var sb strings.Builder
	sb.Grow(len(raw))
	for len(raw) > 0 {
		amp := bytes.IndexByte(raw, '&')
		if amp < 0 {
			sb.Write(raw)
			break
		}
		sb.Write(raw[:amp])
		semi := bytes.IndexByte(raw[amp:], ';')
		if semi < 0 {
			return "", false
		}
		r, ok := entity(string(raw[amp+1 : amp+semi]))
		if !ok {
			return "", false
		}
		sb.WriteRune(r)
		raw = raw[amp+semi+1:]
	}
	return sb.String(), true
}

// entity resolves a reference (without & and ;) to a character XML allows.
func entity(ref string) (rune, bool) {
	switch ref {
	case "lt":
		return '<', true
	case "gt":
		return '>', true
	case "amp":
		return '&', true
	case "apos":
		return '\'', true
	case "quot":
		return '"', true
	}
	num, ok := strings.CutPrefix(ref, "#")
	if !ok || num == "" {
		return 0, false
	}
	base := 10
	if hex, ok := strings.CutPrefix(num, "x"); ok {
		num, base = hex, 16
	}
	n, err := strconv.ParseUint(num, base, 32)
	if err != nil {
		return 0, false
	}
	r := rune(n)
	inRange := r == '\t' || r == '\n' || r == '\r' ||
		(r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= utf8.MaxRune)
	return r, inRange
}

// tag reads a start tag (<name attr="v"...> or <name .../>) or an end tag
// (</name>) at the current position. Names with a namespace prefix fail:
// only encoding/xml resolves those.
func (d *xmlDoc) tag() (name string, empty, end bool, ok bool) {
	if !d.has("<") {
		return "", false, false, false
	}
	d.i++
	if d.has("/") {
		d.i++
		end = true
	}
	start := d.i
	for d.i < len(d.b) && isNameByte(d.b[d.i]) {
		d.i++
	}
	name = string(d.b[start:d.i])
	if name == "" || !isNameStart(name[0]) || strings.ContainsRune(name, ':') {
		return "", false, false, false
	}
	for {
		d.space()
		switch {
		case d.has(">"):
			d.i++
			return name, false, end, true
		case !end && d.has("/>"):
			d.i += 2
			return name, true, false, true
		case end:
			return "", false, false, false
		}
		// An attribute: name="value" or name='value'. Ignored, as the SDK
		// ignores those of these elements.
		as := d.i
		for d.i < len(d.b) && isNameByte(d.b[d.i]) {
			d.i++
		}
		if d.i == as || !isNameStart(d.b[as]) {
			return "", false, false, false
		}
		d.space()
		if !d.has("=") {
			return "", false, false, false
		}
		d.i++
		d.space()
		if d.i == len(d.b) || (d.b[d.i] != '"' && d.b[d.i] != '\'') {
			return "", false, false, false
		}
		q := d.b[d.i]
		close := bytes.IndexByte(d.b[d.i+1:], q)
		if close < 0 || !attrValueOK(d.b[d.i+1:d.i+1+close]) {
			return "", false, false, false
		}
		d.i += close + 2
	}
}

// isNameStart is a byte an XML name may begin with (ASCII only, as
// isNameByte): a letter or '_' (':' starts a namespace, refused anyway).
func isNameStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// attrValueOK is an attribute value encoding/xml takes as it is: no
// markup or reference, valid UTF-8, no character XML excludes.
func attrValueOK(v []byte) bool {
	if bytes.ContainsAny(v, "<&") || !utf8.Valid(v) || bytes.ContainsRune(v, 0xFFFE) || bytes.ContainsRune(v, 0xFFFF) {
		return false
	}
	for _, c := range v {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

func isNameByte(c byte) bool {
	return c == '_' || c == ':' || c == '-' || c == '.' ||
		(c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// comment reads past a comment at the current position. As in
// encoding/xml (the SDK's decoder), the first "--" after "<!--" must be
// the end, "-->": "<!----->" is refused (found by FuzzDecodeListV2).
func (d *xmlDoc) comment() bool {
	end := bytes.Index(d.b[d.i+4:], []byte("--"))
	if end < 0 || d.i+4+end+2 >= len(d.b) || d.b[d.i+4+end+2] != '>' {
		return false
	}
	d.i += 4 + end + 3
	return true
}

func (d *xmlDoc) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *xmlDoc) has(s string) bool {
	return len(d.b)-d.i >= len(s) && string(d.b[d.i:d.i+len(s)]) == s
}

// procInst returns the value of param in an XML declaration's content, as
// encoding/xml reads it (its procInst, whose leniency it shares).
func procInst(param, s string) string {
	param += "="
	i := 0
	var sep byte
	for i < len(s) {
		sub := s[i:]
		k := strings.Index(sub, param)
		if k < 0 || len(param)+k >= len(sub) {
			return ""
		}
		i += len(param) + k + 1
		if c := sub[len(param)+k]; c == '\'' || c == '"' {
			sep = c
			break
		}
	}
	if sep == 0 {
		return ""
	}
	j := strings.IndexByte(s[i:], sep)
	if j < 0 {
		return ""
	}
	return s[i : i+j]
}
