//go:build !unix

package restore

import (
	"context"
	"errors"
)

var errNoFolderLock = errors.New("folders cannot be locked here")

// lockFolder cannot lock a folder on this system: stale temporaries are
// then never cleaned (see claimTemp).
func lockFolder(context.Context, string) (func(), error) { return nil, errNoFolderLock }
