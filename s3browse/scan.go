package s3browse

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"

	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/s3conn"
)

// Scan summarizes every tenant under conn.TenantsPrefix from a flat,
// paginated listing of the bucket (1,000 keys a request), using only keys,
// sizes and LastModified: no request per tenant, so `ls` of 10,000 tenants
// costs a few dozen requests. Memory grows with the number of tenants, not
// of objects: keys are aggregated as they arrive and dropped.
//
// The first pages (scanOptions.firstPages) are listed in sequence, so that
// a bucket of a few thousand keys costs no more requests than they. After
// that many full pages, the rest is listed in parallel: a delimited
// listing of the tenant prefixes still to come (one request per 1,000
// tenants) cuts the key space after those pages into contiguous ranges of
// about scanOptions.rangePages pages each, at tenant prefixes, and
// scanOptions.parallel ranges are listed at once, the first one going on
// with the first listing's continuation token. The ranges tile the key
// space: every key lies in exactly one, and a range drops what the server
// sends outside it (listRange), so no key is missed or counted twice
// whatever the names (case, alphabet, bytes) or the server's handling of
// StartAfter. The names only decide where ranges break: a tenant created
// meanwhile still falls in one, and as all ranges count into one table, a
// tenant split between two would still be counted whole.
//
// That relies on the names being the keys the server sorts by. A server
// that does not URL-encode listings (versitygw, gofakes3) sends U+FFFD for
// what XML cannot carry; such names make no range boundary, and if a range
// meets one, Scan starts over with one sequential listing.
//
// It returns one summary per tenant, sorted by name (byte order), or the
// first listing error. Unknown keys are counted, not fatal; tenants whose
// names fail CheckName come out with Valid false. Objects lying directly
// under the tenants prefix belong to no tenant and are skipped.
func Scan(ctx context.Context, api s3conn.API, conn s3conn.Conn) ([]TenantSummary, error) {
	return scan(ctx, api, conn, defaultScanOptions)
}

// scanOptions tune Scan; tests shrink them to force small pages and ranges.
type scanOptions struct {
	// pageSize is the MaxKeys of a full page.
	pageSize int32
	// parallel is how many ranges are listed at once; 1 lists the whole
	// bucket as one sequential listing.
	parallel int
	// rangePages is how many pages a range is planned to hold. Small ranges
	// balance the work; each costs about one short page more.
	rangePages int
	// firstPages full pages are listed in sequence before the rest is cut
	// into ranges: a bucket of a few thousand keys is listed as quickly in
	// sequence, without the requests that planning ranges costs.
	firstPages int
}

// defaultScanOptions: four listings in flight keep a server's cores and
// the client busy while each waits for its page; two-page ranges leave
// little for the last listing to do alone.
var defaultScanOptions = scanOptions{pageSize: pageSize, parallel: 4, rangePages: 2, firstPages: 4}

func scan(ctx context.Context, api s3conn.API, conn s3conn.Conn, opt scanOptions) ([]TenantSummary, error) {
	agg := newAggregator(conn)
	first := newPager(api, conn, listRange{prefix: agg.root, pageSize: opt.pageSize})
	listed := 0
	v := listVisitor{object: func(o object) {
		listed++
		agg.add(o)
	}}
	more, err := first.next(ctx, v)
	for more && err == nil {
		if opt.parallel > 1 && first.page >= opt.firstPages && listed >= opt.firstPages*int(opt.pageSize) {
			err = scanRanges(ctx, api, conn, opt, agg, first)
			break
		}
		more, err = first.next(ctx, v)
	}
	if errors.Is(err, errReplaced) {
		// Start over in one sequence, which needs no order of names.
		agg = newAggregator(conn)
		err = list(ctx, api, conn, agg.root, "", listVisitor{object: agg.add})
	}
	if err != nil {
		return nil, err
	}
	return agg.summaries(), nil
}

// errReplaced says that ranges met a name with U+FFFD from a server that
// did not URL-encode the listing.
var errReplaced = errors.New("a name in the listing may stand for other bytes")

func newAggregator(conn s3conn.Conn) *aggregator {
	return &aggregator{root: conn.TenantsPrefix(), tenants: map[string]*summarizer{}}
}

// aggregator sums objects per tenant; safe for concurrent use.
type aggregator struct {
	root    string
	mu      sync.Mutex
	tenants map[string]*summarizer
	keys    int // objects counted under a tenant
}

func (a *aggregator) add(o object) {
	rel, ok := strings.CutPrefix(o.key, a.root)
	if !ok {
		return
	}
	name, rest, ok := strings.Cut(rel, "/")
	if !ok {
		return
	}
	k := layout.ParseTenantKey(rest, o.size)
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.tenants[name]
	if s == nil {
		// A copy: name points into the key, which is otherwise dropped.
		name = strings.Clone(name)
		s = newSummarizer(name)
		a.tenants[name] = s
	}
	s.add(k, o)
	a.keys++
}

// keysPerTenant is the mean number of objects per tenant seen so far, at
// least 1.
func (a *aggregator) keysPerTenant() float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.tenants) == 0 {
		return 1
	}
	return max(1, float64(a.keys)/float64(len(a.tenants)))
}

func (a *aggregator) summaries() []TenantSummary {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]TenantSummary, 0, len(a.tenants))
	for _, s := range a.tenants {
		out = append(out, s.summary())
	}
	slices.SortFunc(out, func(a, b TenantSummary) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// keyRange is a part of the key space after the first pages that one
// listing walks: the tenant prefixes ("<root><name>/") it holds, known from
// the delimited listing, tell how far along it is and size its last page.
type keyRange struct {
	p        *pager
	prefixes []string // sorted
}

// scanRanges lists everything after the first pages, whose pager it takes
// over: it lists the tenant prefixes still to come, cuts the key space
// after the pager's position into ranges at some of them, and lists the
// ranges in parallel, the pager's own being the first. While the prefixes
// are listed, the pager goes on, for as many pages again as it has listed
// at most: a listing that ends meanwhile needs no ranges.
func scanRanges(ctx context.Context, api s3conn.API, conn s3conn.Conn, opt scanOptions, agg *aggregator, first *pager) error {
	type listed struct {
		prefixes []string
		err      error
	}
	namesCtx, stopNames := context.WithCancel(ctx)
	defer stopNames()
	names := make(chan listed, 1)
	after := first.last
	go func() {
		p, err := tenantPrefixesAfter(namesCtx, api, conn, agg.root, after, opt.pageSize)
		names <- listed{p, err}
	}()
	// The pager goes on while the prefixes are listed, for as many pages
	// again as it has listed at most.
	var r listed
	for extra := first.page; ; extra-- {
		if extra > 0 {
			select {
			case r = <-names:
			default:
				more, err := first.next(ctx, listVisitor{object: agg.add})
				if err != nil || !more {
					stopNames()
					<-names // no goroutine outlives Scan
					return err
				}
				continue
			}
		} else {
			r = <-names
		}
		break
	}
	if r.err != nil {
		return r.err
	}
	return listRanges(ctx, api, conn, opt, agg, first, r.prefixes)
}

// listRanges cuts the key space after the first pager's position into
// ranges at tenant prefixes, and lists them in parallel, the first pager's
// own range first.
func listRanges(ctx context.Context, api s3conn.API, conn s3conn.Conn, opt scanOptions, agg *aggregator, first *pager, prefixes []string) error {
	// Only prefixes after where the first pager is (it may have gone on
	// while they were listed) start or size a range.
	i, _ := slices.BinarySearch(prefixes, first.last)
	prefixes = prefixes[i:]
	perTenant := agg.keysPerTenant()
	// Tenants per range: as many as fit rangePages pages with the margin
	// of run's estimate.
	per := int((float64(opt.rangePages)*float64(opt.pageSize)-estimateSlack)/(perTenant*estimateMargin) - 0.5)
	per = max(per, 1)

	// Range i runs from bounds[i] (inclusive) to bounds[i+1] (exclusive);
	// the first range from where the first pager is, the last one to the
	// end of the listing. A name that is not valid UTF-8 would be sent as
	// StartAfter, which S3 may refuse, and one with U+FFFD may not be the
	// key the server sorts by: they make no boundary.
	bounds := []string{""}
	for j := per; j < len(prefixes); {
		if !utf8.ValidString(prefixes[j]) || strings.ContainsRune(prefixes[j], utf8.RuneError) {
			j++
			continue
		}
		bounds = append(bounds, prefixes[j])
		j += per
	}
	ranges := make([]*keyRange, 0, len(bounds))
	for i, from := range bounds {
		until := ""
		if i+1 < len(bounds) {
			until = bounds[i+1]
		}
		lo, hi := 0, len(prefixes)
		if from != "" {
			lo, _ = slices.BinarySearch(prefixes, from)
		}
		if until != "" {
			hi, _ = slices.BinarySearch(prefixes, until)
		}
		r := &keyRange{prefixes: prefixes[lo:hi]}
		if i == 0 {
			r.p = first
			r.p.r.until = until
			r.p.replaced = false // what it listed in sequence needs no order
		} else {
			r.p = newPager(api, conn, listRange{
				prefix: agg.root, from: from, until: until,
				startAfter: justBelow(from), pageSize: opt.pageSize,
			})
		}
		ranges = append(ranges, r)
	}

	v := listVisitor{object: agg.add}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(opt.parallel, 1))
	for _, r := range ranges {
		g.Go(func() error { return r.run(gctx, v, perTenant) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for _, r := range ranges {
		if r.p.replaced {
			return errReplaced
		}
	}
	return nil
}

// estimateMargin and estimateSlack pad the number of objects a range is
// expected to hold, so that its last page usually reaches just past its
// end: a page short of it costs one more request, a page far past it makes
// the server list objects that are dropped.
const (
	estimateMargin = 1.03
	estimateSlack  = 8
)

// run lists the range to its end. Before each page it sizes MaxKeys to the
// objects still expected: the tenants of the range after the one being
// listed, plus half a tenant for the rest of that one.
func (r *keyRange) run(ctx context.Context, v listVisitor, perTenant float64) error {
	for {
		left, _ := slices.BinarySearch(r.prefixes, r.p.last)
		want := (float64(len(r.prefixes)-left) + 0.5) * perTenant * estimateMargin
		r.p.setMaxKeys(int32(min(math.Ceil(want)+estimateSlack, float64(r.p.r.pageSize))))
		more, err := r.p.next(ctx, v)
		if err != nil || !more {
			return err
		}
	}
}

// tenantPrefixesAfter lists, with one delimited listing, the tenant
// prefixes ("<root><name>/") after the key `after`, sorted, each once.
func tenantPrefixesAfter(ctx context.Context, api s3conn.API, conn s3conn.Conn, root, after string, size int32) ([]string, error) {
	var out []string
	p := newPager(api, conn, listRange{
		prefix: root, delimiter: "/", startAfter: after, from: after + "\x00", pageSize: size,
	})
	for {
		more, err := p.next(ctx, listVisitor{prefix: func(name string) {
			if strings.HasPrefix(name, root) && len(name) > len(root)+1 && strings.HasSuffix(name, "/") {
				out = append(out, name)
			}
		}})
		if err != nil {
			return nil, err
		}
		if !more {
			break
		}
	}
	// Servers send them in order; gofakes3 repeats some across pages.
	slices.Sort(out)
	return slices.Compact(out), nil
}

// justBelow returns a string close below s (s itself when s is ""): s with
// its last byte decreased, or dropped when it is 0. Only strings that start
// like s and are shorter or differ in that byte lie between.
func justBelow(s string) string {
	if s == "" {
		return s
	}
	last := s[len(s)-1]
	if last == 0 {
		return s[:len(s)-1]
	}
	return s[:len(s)-1] + string([]byte{last - 1})
}
