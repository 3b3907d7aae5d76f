//go:build unix

package restore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// errNoFolderLock says the folder's file system cannot flock a folder.
var errNoFolderLock = errors.New("folders cannot be locked here")

// folderSlots hold, per folder, the turn of this process's claims: one at
// a time waits for the folder's flock, the others wait here and are woken
// at once, instead of polling flock in turn. A slot lives while a claim
// uses it: a replicator restores into a new folder for each history check.
var folderSlots struct {
	sync.Mutex
	m map[string]*folderSlot
}

type folderSlot struct {
	turn  chan struct{}
	users int
}

// takeSlot returns dir's slot, counted as used until putSlot.
func takeSlot(dir string) *folderSlot {
	folderSlots.Lock()
	defer folderSlots.Unlock()
	if folderSlots.m == nil {
		folderSlots.m = map[string]*folderSlot{}
	}
	s, ok := folderSlots.m[dir]
	if !ok {
		s = &folderSlot{turn: make(chan struct{}, 1)}
		folderSlots.m[dir] = s
	}
	s.users++
	return s
}

func putSlot(dir string, s *folderSlot) {
	folderSlots.Lock()
	defer folderSlots.Unlock()
	if s.users--; s.users == 0 {
		delete(folderSlots.m, dir)
	}
}

// lockFolder takes an exclusive flock on the folder dir itself, the lock
// under which temporaries are claimed and cleaned (see claimTemp), waiting
// for other processes as long as ctx allows. unlock lets it go.
func lockFolder(ctx context.Context, dir string) (unlock func(), err error) {
	dir = filepath.Clean(dir)
	slot := takeSlot(dir)
	select {
	case slot.turn <- struct{}{}:
	case <-ctx.Done():
		putSlot(dir, slot)
		return nil, ctx.Err()
	}
	leave := func() {
		<-slot.turn
		putSlot(dir, slot)
	}
	d, err := os.Open(dir)
	if err != nil {
		leave()
		if errors.Is(err, os.ErrPermission) {
			// A folder one may write but not read: nobody who cannot
			// list it can clean it either.
			return nil, errors.Join(errNoFolderLock, err)
		}
		return nil, err
	}
	wait := time.Millisecond
	for {
		err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				d.Close()
				leave()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			d.Close()
			leave()
			// NFS, for one, locks only files opened for writing.
			return nil, errors.Join(errNoFolderLock, err)
		}
		// Another process claims or cleans in this folder: for a moment.
		select {
		case <-ctx.Done():
			d.Close()
			leave()
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}
