package replication

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/superfly/ltx"

	"github.com/litefleet/litefleet/dbfile"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/restore"
	"github.com/litefleet/litefleet/untrusted"
)

// history is the verdict on a local file's history against its replica's.
type history int

const (
	historySame     history = iota // the replica is the local history, or a prefix of it
	historyFresh                   // the replica is empty
	historyRestored                // the file is a restored copy of the replica: continue from it
	historyDiverged                // different histories: nothing may be uploaded
)

// DivergedError says a local database and its replica have different
// histories, with both positions and the two ways out.
type DivergedError struct {
	Tenant, Path, URL string
	LocalTXID         uint64
	ReplicaTXID       uint64
	Why               string
}

func (e *DivergedError) Error() string {
	return fmt.Sprintf("local database (TXID %d) and replica %s (TXID %d) have different histories (%s): nothing was uploaded; "+
		"to keep the replica, restore it over the file (litefleet restore %s -o %s -force); "+
		"to keep the file, replicate with -takeover %s (the replica's history is kept under %s first)",
		e.LocalTXID, e.URL, e.ReplicaTXID, e.Why, e.Tenant, e.Path, e.Tenant, layout.Root+"archive/")
}

// checkHistory compares the local file's history, as Litestream's state
// beside it records it, with the replica's, before anything is uploaded:
//   - an empty replica takes any file;
//   - the replica's newest L0 file, byte for byte the local one of the same
//     TXIDs (their LTX file checksums match), means the same history, the
//     local side being equal or ahead;
//   - otherwise (the replica is ahead, or the files differ, or there is no
//     local state) the file continues the tenant only if its pages are the
//     replica's latest state: a database restored from the replica.
func (e *Engine) checkHistory(ctx context.Context, t *tenant, c *tenantClient) (history, error) {
	remoteMax, err := c.maxTXID(ctx)
	if err != nil {
		return 0, err
	}
	_, localMax, _, err := localL0(t.path)
	if err != nil {
		return 0, fmt.Errorf("read Litestream's state beside %s: %w", untrusted.Printable(t.path), err)
	}
	if remoteMax == 0 {
		if localMax > 0 {
			// Local L0 files before the newest may be gone: start over.
			return historyRestored, nil
		}
		return historyFresh, nil
	}
	why := "no Litestream state beside the file"
	remoteL0, ok, err := c.latest(ctx, 0)
	if err != nil {
		return 0, err
	}
	switch {
	case localMax == 0:
	case !ok || localMax < remoteL0.MaxTXID:
		why = "the replica is ahead"
	default:
		local, found, err := localTrailer(t.path, remoteL0.MinTXID, remoteL0.MaxTXID)
		if err != nil {
			return 0, err
		}
		if !found {
			why = fmt.Sprintf("no local copy of the replica's newest file %s", ltx.FormatFilename(remoteL0.MinTXID, remoteL0.MaxTXID))
			break
		}
		remote, err := c.readTrailer(ctx, remoteL0)
		if err != nil {
			return 0, err
		}
		if remote.FileChecksum == local.FileChecksum {
			return historySame, nil
		}
		why = fmt.Sprintf("TXID %d differs", remoteL0.MaxTXID)
	}
	same, err := e.sameAsReplica(ctx, t, uint64(remoteMax))
	if err != nil {
		return 0, fmt.Errorf("compare %s with the replica: %w", untrusted.Printable(t.path), err)
	}
	if same {
		e.log.Info("the database is a restored copy of the replica: its history continues", "db", t.name, "txid", remoteMax.String())
		return historyRestored, nil
	}
	return historyDiverged, &DivergedError{Tenant: t.name, Path: t.path, URL: t.target.Conn.URL(t.name),
		LocalTXID: uint64(localMax), ReplicaTXID: uint64(remoteMax), Why: why}
}

// sameAsReplica restores the replica at txid into a temporary file and
// compares its pages with the local database's.
func (e *Engine) sameAsReplica(ctx context.Context, t *tenant, txid uint64) (bool, error) {
	dir, err := os.MkdirTemp("", "litefleet-compare-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "replica.db")
	if _, err := restore.Run(ctx, t.api, restore.Options{Conn: t.target.Conn, Tenant: t.name, Output: out, TXID: txid, Source: restore.SourceLTX}); err != nil {
		return false, err
	}
	want, wantN, err := pageDigest(ctx, out)
	if err != nil {
		return false, err
	}
	got, gotN, err := pageDigest(ctx, t.path)
	if err != nil {
		return false, err
	}
	return gotN == wantN && bytes.Equal(got, want), nil
}

// pageDigest hashes a database's pages as SQLite sees them (the file with
// its WAL), in one read transaction.
func pageDigest(ctx context.Context, path string) ([]byte, int, error) {
	// The file may be a live tenant's: its connection is made under a
	// dbfile hold, like every SQLite connection of the engine.
	hold, err := dbfile.Acquire(path)
	if err != nil {
		return nil, 0, err
	}
	defer hold.Release()
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?_pragma=busy_timeout(5000)&_pragma=query_only(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT pgno, data FROM sqlite_dbpage ORDER BY pgno`)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	h := sha256.New()
	n := 0
	for rows.Next() {
		var pgno int64
		var data []byte
		if err := rows.Scan(&pgno, &data); err != nil {
			return nil, 0, err
		}
		if pgno == 1 && len(data) >= 100 {
			// The change counter (bytes 24-27), the counter its version
			// number is valid for and that version (92-99) are rewritten
			// by whichever SQLite commits page 1, not by the data: a copy
			// kept current through SQLite (restore -f) has the replica's
			// content but its own counter.
			data = slices.Clone(data)
			clear(data[24:28])
			clear(data[92:100])
		}
		fmt.Fprintf(h, "%d:", pgno)
		h.Write(data)
		n++
	}
	return h.Sum(nil), n, rows.Err()
}

// archiveHistory copies the tenant's LTX files under an archive prefix
// outside the tenants' prefix, then deletes them from the tenant's prefix,
// so that the local file can start a new history. It returns the archive's
// URL, from which `litestream restore` restores the old history.
func (e *Engine) archiveHistory(ctx context.Context, t *tenant, c *tenantClient) (string, error) {
	if err := c.load(ctx); err != nil {
		return "", err
	}
	archive := layout.ArchivePrefix(c.path, e.opt.Now())
	c.mu.Lock()
	var keys []string
	var infos []*ltx.FileInfo
	for _, objs := range c.levels {
		for _, o := range objs {
			info := o.info
			infos = append(infos, &info)
			keys = append(keys, c.key(info.Level, info.MinTXID, info.MaxTXID))
		}
	}
	c.mu.Unlock()
	for _, key := range keys {
		rel := strings.TrimPrefix(key, c.path+"/")
		deadline, err := c.gate.writeDeadline()
		if err != nil {
			return "", err
		}
		cctx, cancel := context.WithDeadline(ctx, deadline)
		_, err = c.api.CopyObject(cctx, &s3.CopyObjectInput{
			Bucket:            aws.String(c.bucket),
			Key:               aws.String(archive + "/" + rel),
			CopySource:        aws.String(url.PathEscape(c.bucket) + "/" + escapeKey(key)),
			MetadataDirective: types.MetadataDirectiveCopy,
		})
		cancel()
		if err != nil {
			return "", fmt.Errorf("copy %s to %s: %w", key, archive, err)
		}
	}
	if err := c.DeleteLTXFiles(ctx, infos); err != nil {
		return "", fmt.Errorf("archived to %s, but clearing the tenant's prefix failed: %w", archive, err)
	}
	return "s3://" + c.bucket + "/" + archive, nil
}

func escapeKey(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// resetLocalState removes Litestream's state beside the database, so that
// the next open starts from a snapshot of the file.
func resetLocalState(path string) error {
	err := os.RemoveAll(metaDir(path))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", untrusted.Printable(metaDir(path)), err)
	}
	return nil
}
