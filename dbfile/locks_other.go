//go:build !unix

package dbfile

// LockedByOther cannot tell on this system whether another process has the
// database open; the lease check still covers replicators.
func LockedByOther(string) (int, bool) { return 0, false }
