package layout

import (
	"path/filepath"
	"strconv"

	"github.com/benbjohnson/litestream"
	"github.com/superfly/ltx"
)

// The local layout: Litestream's state folder beside each database, and
// litefleet's own files in it.

// StateDirSuffix ends the name of the hidden folder where Litestream keeps
// the local state of a database: <dir>/.<file>-litestream.
const StateDirSuffix = litestream.MetaDirSuffix

// metaDir is where Litestream keeps the state of the database at path, the
// same rule as litestream.NewDB: next to the path it was given.
func metaDir(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+StateDirSuffix)
}

// LitestreamStateDir is the folder where Litestream keeps the state of the
// database at path: <dir>/.<file>-litestream.
func LitestreamStateDir(path string) string { return metaDir(path) }

// LTXLevelDir is the folder, in a state folder, of Litestream's local LTX
// files of a level (litestream's DB.LTXLevelDir).
func LTXLevelDir(stateDir string, level int) string {
	return filepath.Join(stateDir, "ltx", strconv.Itoa(level))
}

// LTXPath is a local LTX file in a state folder (litestream's DB.LTXPath).
func LTXPath(stateDir string, level int, minTXID, maxTXID ltx.TXID) string {
	return filepath.Join(LTXLevelDir(stateDir, level), ltx.FormatFilename(minTXID, maxTXID))
}

// PageTableFile is the wake's page table, in the state folder (package
// replication's pages.go).
const PageTableFile = "litefleet-pages"

// ListingFile holds, beside Litestream's state, the fingerprint of the
// replica's files when this host last left the tenant (asleep or stopped).
const ListingFile = "litefleet-listing"
