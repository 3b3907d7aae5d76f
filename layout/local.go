package layout

import (
	"path/filepath"

	"github.com/benbjohnson/litestream"
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

// PageTableFile is the wake's page table, in the state folder (package
// replication's pages.go).
const PageTableFile = "litefleet-pages"

// ListingFile holds, beside Litestream's state, the fingerprint of the
// replica's files when this host last left the tenant (asleep or stopped).
const ListingFile = "litefleet-listing"
