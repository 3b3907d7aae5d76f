package verify

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/superfly/ltx"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/restore"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/untrusted"
)

// abandonedAfter is the age (by S3's Initiated against this host's clock:
// a hint, never a liveness verdict) past which a multipart upload under a
// tenant whose lease is live counts as abandoned. Without a live lease
// every one does: nobody is writing the prefix.
const abandonedAfter = 24 * time.Hour

// maxNamed bounds the objects a finding names; the rest are counted.
const maxNamed = 5

// chain is what the chain check found.
type chain struct {
	empty, v3Only  bool
	files          int
	bytes          int64
	latest, oldest restore.Position
	// ends are the TXIDs a restore can reach: ends of a file that
	// continues a snapshot without a gap.
	ends map[uint64]bool
	// broken are the chain's faults, mismatches the compactions that
	// disagree with the level-0 files they replace.
	broken, mismatches []string
}

// fileCheck is one LTX file as read and decoded.
type fileCheck struct {
	s3browse.LTXFile
	key    string
	hdr    ltx.Header
	pages  map[uint32]ltx.Checksum // levels 0-8 only: for the compaction check
	ok     bool                    // read, decoded, checksum valid
	gone   bool                    // deleted since the listing (a live compaction)
	reason string
}

func (f *fileCheck) id() [3]uint64 { return [3]uint64{uint64(f.Level), f.MinTXID, f.MaxTXID} }

// checkChain lists the tenant's prefix and reads every LTX file in it.
func checkChain(ctx context.Context, api API, conn s3conn.Conn, tenant string, known *Uploads) (*chain, error) {
	c := &chain{ends: map[uint64]bool{}}
	t, err := s3browse.Inspect(ctx, api, conn, tenant)
	if err != nil {
		return nil, err
	}
	if len(t.Levels) == 0 {
		c.empty, c.v3Only = len(t.Generations) == 0, len(t.Generations) > 0
		return c, nil
	}
	root := conn.TenantPath(tenant)

	// One lineage: no file of a deposed host.
	if err := t.CheckLineage(ctx, api, conn, 0); err != nil {
		return nil, err
	}
	stray := map[[3]uint64]bool{}
	if t.Lineage.Error != "" {
		c.broken = append(c.broken, "the lineage record cannot be read: "+t.Lineage.Error)
	}
	for _, s := range t.Lineage.Strays {
		stray[[3]uint64{uint64(s.Level), s.MinTXID, s.MaxTXID}] = true
		c.broken = append(c.broken, fmt.Sprintf("stray file %s: %s (not this tenant's history; its holder moves it to %sarchive/)", untrusted.Printable(s.Key), s.Why, layout.Root))
	}
	// Nothing else under the prefix.
	if t.UnknownObjects > 0 {
		names, err := unknownObjects(ctx, api, conn, root+"/")
		if err != nil {
			return nil, err
		}
		c.broken = append(c.broken, fmt.Sprintf("%d stray object(s) under the prefix that are not Litestream's: %s", t.UnknownObjects, strings.Join(names, ", ")))
	}
	ups, ok := known.of(tenant)
	if !ok {
		if ups, _, err = listUploads(ctx, api, conn, root+"/", 1); err != nil {
			return nil, err
		}
	}
	uploads := abandonedUploads(ups, t.Lease)
	if len(uploads) > 0 {
		c.broken = append(c.broken, fmt.Sprintf("abandoned multipart upload(s) under the prefix: %s: abort them (aws s3api abort-multipart-upload); they cost storage and hide from listings",
			strings.Join(uploads, ", ")))
	}

	// Every file readable, its checksum valid, its header what its name
	// says. Page checksums are kept only of the files a compaction check
	// compares: the compactions and the level-0 files in their ranges.
	var compacted [][2]uint64
	for _, l := range t.Levels {
		if l.Level > 0 && l.Level < layout.SnapshotLevel {
			for _, f := range l.Files {
				compacted = append(compacted, [2]uint64{f.MinTXID, f.MaxTXID})
			}
		}
	}
	var files []*fileCheck
	for _, l := range t.Levels {
		for _, f := range l.Files {
			fc := &fileCheck{LTXFile: f, key: fmt.Sprintf("%s/%04x/%s", root, f.Level, ltx.FormatFilename(ltx.TXID(f.MinTXID), ltx.TXID(f.MaxTXID)))}
			if stray[fc.id()] {
				continue
			}
			keep := f.Level > 0 && f.Level < layout.SnapshotLevel
			for _, r := range compacted {
				keep = keep || (f.Level == 0 && f.MinTXID >= r[0] && f.MaxTXID <= r[1])
			}
			if err := readFile(ctx, api, conn, fc, keep); err != nil {
				return nil, err
			}
			c.files++
			c.bytes += f.Size
			if !fc.gone {
				files = append(files, fc)
			}
			if fc.reason != "" {
				c.broken = append(c.broken, fmt.Sprintf("object %s: %s", untrusted.Printable(fc.key), fc.reason))
			}
		}
	}
	var pageSize uint32
	for _, f := range files {
		if !f.ok {
			continue
		}
		if pageSize == 0 {
			pageSize = f.hdr.PageSize
		} else if f.hdr.PageSize != pageSize {
			c.broken = append(c.broken, fmt.Sprintf("object %s has page size %d, the others %d: LTX files of two page sizes cannot be restored together", untrusted.Printable(f.key), f.hdr.PageSize, pageSize))
		}
	}

	c.contiguity(files)
	c.reach(files)
	c.compactions(files)
	return c, nil
}

// readFile downloads and decodes one LTX file, bounded by its listed size.
func readFile(ctx context.Context, api API, conn s3conn.Conn, f *fileCheck, keep bool) error {
	out, err := api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(conn.Bucket), Key: aws.String(f.key)})
	if err != nil {
		if hosts.IsNotFound(err) {
			f.gone = true // compacted or retired by a live replicator since the listing
			return nil
		}
		return fmt.Errorf("get %s: %w", f.key, err)
	}
	defer out.Body.Close()
	lr := &io.LimitedReader{R: out.Body, N: f.Size + 1}
	dec := ltx.NewDecoder(bufio.NewReaderSize(lr, 256<<10))
	fail := func(format string, a ...any) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f.reason = fmt.Sprintf(format, a...)
		return nil
	}
	if err := dec.DecodeHeader(); err != nil {
		return fail("not a readable LTX file: %v", err)
	}
	f.hdr = dec.Header()
	if f.hdr.MinTXID != ltx.TXID(f.MinTXID) || f.hdr.MaxTXID != ltx.TXID(f.MaxTXID) {
		return fail("holds TXIDs %s-%s, not what its name says", f.hdr.MinTXID, f.hdr.MaxTXID)
	}
	if keep {
		f.pages = map[uint32]ltx.Checksum{}
	}
	h := ltx.NewHasher()
	data := make([]byte, f.hdr.PageSize)
	for {
		var ph ltx.PageHeader
		if err := dec.DecodePage(&ph, data); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fail("corrupt: cannot decode a page: %v", err)
		}
		if keep {
			f.pages[ph.Pgno] = ltx.ChecksumPageWithHasher(h, ph.Pgno, data)
		}
	}
	if err := restore.CloseDecoder(dec); err != nil {
		if errors.Is(err, ltx.ErrChecksumMismatch) {
			return fail("corrupt: its checksum does not match its content")
		}
		return fail("corrupt: %v", err)
	}
	if lr.N <= 0 {
		return fail("longer than the %d bytes listed", f.Size)
	}
	f.ok = true
	return nil
}

// contiguity finds gaps within each level but the snapshots': every file
// of a level continues the one before it (retention removes files from
// the oldest end, never from the middle).
func (c *chain) contiguity(files []*fileCheck) {
	byLevel := map[int][]*fileCheck{}
	for _, f := range files {
		if f.Level < layout.SnapshotLevel {
			byLevel[f.Level] = append(byLevel[f.Level], f)
		}
	}
	levels := make([]int, 0, len(byLevel))
	for l := range byLevel {
		levels = append(levels, l)
	}
	slices.Sort(levels)
	for _, l := range levels {
		fs := byLevel[l]
		for i := 1; i < len(fs); i++ {
			prev, f := fs[i-1], fs[i]
			if f.MinTXID > prev.MaxTXID+1 {
				c.broken = append(c.broken, fmt.Sprintf("level %d: TXIDs %s to %s are missing between %s and %s",
					l, layout.TXIDHex(prev.MaxTXID+1), layout.TXIDHex(f.MinTXID-1), untrusted.Printable(prev.key), untrusted.Printable(f.key)))
			}
		}
	}
}

// reach finds the restore points: from each snapshot (a file from TXID 1),
// the ends of the files that continue it without a gap, as Litestream's
// planner continues (a file may overlap what is reached: its pages are
// the versions at its end). The newest file's end must be one of them.
func (c *chain) reach(files []*fileCheck) {
	at := map[uint64]time.Time{}
	var latest uint64
	for _, f := range files {
		latest = max(latest, f.MaxTXID)
		if f.ok && f.hdr.Timestamp > 0 {
			ts := time.UnixMilli(f.hdr.Timestamp).UTC()
			if old, ok := at[f.MaxTXID]; !ok || ts.Before(old) {
				at[f.MaxTXID] = ts
			}
		}
	}
	sorted := slices.Clone(files)
	slices.SortFunc(sorted, func(a, b *fileCheck) int {
		return cmp.Or(cmp.Compare(a.MinTXID, b.MinTXID), cmp.Compare(a.MaxTXID, b.MaxTXID))
	})
	var ends []uint64 // sorted
	for _, f := range sorted {
		if !f.ok {
			continue
		}
		i, _ := slices.BinarySearch(ends, f.MinTXID-1)
		if f.MinTXID == 1 || (i < len(ends) && ends[i] < f.MaxTXID) {
			if j, found := slices.BinarySearch(ends, f.MaxTXID); !found {
				ends = slices.Insert(ends, j, f.MaxTXID)
			}
			c.ends[f.MaxTXID] = true
		}
	}
	pos := func(txid uint64) restore.Position {
		return restore.Position{TXID: txid, TXIDHex: layout.TXIDHex(txid), Time: at[txid]}
	}
	c.latest = pos(latest)
	var oldest uint64
	for e := range c.ends {
		if oldest == 0 || e < oldest {
			oldest = e
		}
	}
	if oldest != 0 {
		c.oldest = pos(oldest)
	}
	switch {
	case oldest == 0:
		c.broken = append(c.broken, "no snapshot to start from: no readable LTX file begins at TXID 1")
	case !c.ends[latest]:
		var reached uint64
		for e := range c.ends {
			reached = max(reached, e)
		}
		c.broken = append(c.broken, fmt.Sprintf("the latest TXID %s cannot be reached from a snapshot: the chain ends at %s",
			layout.TXIDHex(latest), layout.TXIDHex(reached)))
	}
}

// compactions compares each compacted file with the level-0 files it
// replaces, where all of them are still there: the same pages, with the
// same content, up to the same size.
func (c *chain) compactions(files []*fileCheck) {
	var l0 []*fileCheck
	for _, f := range files {
		if f.Level == 0 && f.ok {
			l0 = append(l0, f)
		}
	}
	for _, cf := range files {
		if cf.Level == 0 || cf.Level >= layout.SnapshotLevel || !cf.ok {
			continue
		}
		i, _ := slices.BinarySearchFunc(l0, cf.MinTXID, func(f *fileCheck, txid uint64) int { return cmp.Compare(f.MinTXID, txid) })
		var parts []*fileCheck
		next := cf.MinTXID
		for ; i < len(l0) && l0[i].MinTXID == next && l0[i].MaxTXID <= cf.MaxTXID; i++ {
			parts = append(parts, l0[i])
			next = l0[i].MaxTXID + 1
		}
		if len(parts) == 0 || next != cf.MaxTXID+1 {
			continue // the level-0 files are gone (retention) or incomplete: nothing to compare
		}
		if why := disagree(cf, parts); why != "" {
			c.mismatches = append(c.mismatches, fmt.Sprintf("compaction %s disagrees with the %d level-0 file(s) it replaces: %s; one of them is not what the primary held",
				untrusted.Printable(cf.key), len(parts), why))
		}
	}
}

// disagree says how a compaction differs from the merge of parts, or "".
func disagree(cf *fileCheck, parts []*fileCheck) string {
	last := parts[len(parts)-1].hdr
	if cf.hdr.Commit != last.Commit {
		return fmt.Sprintf("it ends the database at page %d, they at %d", cf.hdr.Commit, last.Commit)
	}
	merged := map[uint32]ltx.Checksum{}
	for _, p := range parts {
		for pgno, sum := range p.pages {
			if pgno <= last.Commit {
				merged[pgno] = sum
			}
		}
	}
	var differ []uint32
	for pgno, sum := range merged {
		if cf.pages[pgno] != sum {
			differ = append(differ, pgno)
		}
	}
	for pgno := range cf.pages {
		if _, ok := merged[pgno]; !ok {
			differ = append(differ, pgno)
		}
	}
	if len(differ) == 0 {
		return ""
	}
	slices.Sort(differ)
	return fmt.Sprintf("%d page(s) differ, the first %d", len(differ), differ[0])
}

// unknownObjects names the objects under root that are not Litestream's
// or litefleet's (at most maxNamed, the rest counted).
func unknownObjects(ctx context.Context, api API, conn s3conn.Conn, root string) ([]string, error) {
	var names []string
	more := 0
	var token *string
	for page := 0; page < 100; page++ {
		out, err := api.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(conn.Bucket), Prefix: aws.String(root), ContinuationToken: token})
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", root, err)
		}
		for _, o := range out.Contents {
			key := aws.ToString(o.Key)
			if layout.KnownTenantKey(strings.TrimPrefix(key, root), aws.ToInt64(o.Size)) {
				continue
			}
			if len(names) < maxNamed {
				names = append(names, untrusted.Printable(key))
			} else {
				more++
			}
		}
		if !aws.ToBool(out.IsTruncated) || out.NextContinuationToken == nil {
			break
		}
		token = out.NextContinuationToken
	}
	if more > 0 {
		names = append(names, fmt.Sprintf("and %d more", more))
	}
	return names, nil
}

// Uploads are the multipart uploads in progress under the tenants' prefix,
// listed once for a run over many tenants.
type Uploads struct {
	byTenant map[string][]types.MultipartUpload
}

// of returns a tenant's uploads; ok is false when u does not know (nil).
func (u *Uploads) of(tenant string) ([]types.MultipartUpload, bool) {
	if u == nil {
		return nil, false
	}
	return u.byTenant[tenant], true
}

// maxUploadPages bounds the listing of a prefix's multipart uploads (1,000
// a page): past it, each tenant's are listed on their own.
const maxUploadPages = 100

// ListUploads lists the multipart uploads under conn's tenants prefix; nil
// when there are more than maxUploadPages pages of them.
func ListUploads(ctx context.Context, api API, conn s3conn.Conn) (*Uploads, error) {
	root := conn.TenantsPrefix()
	ups, complete, err := listUploads(ctx, api, conn, root, maxUploadPages)
	if err != nil || !complete {
		return nil, err
	}
	u := &Uploads{byTenant: map[string][]types.MultipartUpload{}}
	for _, up := range ups {
		name, _, ok := strings.Cut(strings.TrimPrefix(aws.ToString(up.Key), root), "/")
		if ok {
			u.byTenant[name] = append(u.byTenant[name], up)
		}
	}
	return u, nil
}

// listUploads lists the multipart uploads under prefix, at most pages
// pages; complete is false when there are more.
func listUploads(ctx context.Context, api API, conn s3conn.Conn, prefix string, pages int) (_ []types.MultipartUpload, complete bool, _ error) {
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(conn.Bucket), Prefix: aws.String(prefix)}
	var all []types.MultipartUpload
	for page := 0; ; page++ {
		out, err := api.ListMultipartUploads(ctx, in)
		if err != nil {
			return nil, false, fmt.Errorf("list the multipart uploads under %s: %w", prefix, err)
		}
		all = append(all, out.Uploads...)
		if !aws.ToBool(out.IsTruncated) || (out.NextKeyMarker == nil && out.NextUploadIdMarker == nil) {
			return all, true, nil
		}
		if page+1 >= pages {
			return all, false, nil // for one tenant, the first thousand name the fault well enough
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

// abandonedUploads names the multipart uploads that nobody is finishing:
// all of them when no live lease holds the tenant, else those started over
// abandonedAfter ago.
func abandonedUploads(uploads []types.MultipartUpload, lease *s3browse.Lease) []string {
	now := time.Now()
	live := lease.Live(now)
	var names []string
	for _, u := range uploads {
		started := aws.ToTime(u.Initiated)
		if live && now.Sub(started) < abandonedAfter {
			continue
		}
		if len(names) == maxNamed {
			names = append(names, "and more")
			break
		}
		names = append(names, fmt.Sprintf("%s (upload %s, started %s)", untrusted.Printable(aws.ToString(u.Key)),
			untrusted.Printable(aws.ToString(u.UploadId)), started.UTC().Format(time.RFC3339)))
	}
	return names
}
