package verify

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"github.com/superfly/ltx"
)

// fileChecksum is the LTX checksum of a database file (ltx's: the XOR of
// ltx.ChecksumPage over every page but the lock page, with ChecksumFlag),
// the one the replicator records at each TXID. The file is a restored
// copy that no SQLite connection of this process has open: read directly.
func fileChecksum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("checksum of the restored copy: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	var hdr [100]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return "", fmt.Errorf("checksum of the restored copy: read the header: %w", err)
	}
	pageSize := uint32(binary.BigEndian.Uint16(hdr[16:18]))
	if pageSize == 1 {
		pageSize = 65536
	}
	if !ltx.IsValidPageSize(pageSize) {
		return "", fmt.Errorf("checksum of the restored copy: page size %d is not SQLite's", pageSize)
	}
	page := make([]byte, pageSize)
	copy(page, hdr[:])
	if _, err := io.ReadFull(br, page[len(hdr):]); err != nil {
		return "", fmt.Errorf("checksum of the restored copy: %w", err)
	}
	lock := ltx.LockPgno(pageSize)
	h := ltx.NewHasher()
	var sum ltx.Checksum
	for pgno := uint32(1); ; pgno++ {
		if pgno > 1 {
			if _, err := io.ReadFull(br, page); err == io.EOF {
				break
			} else if err != nil {
				return "", fmt.Errorf("checksum of the restored copy: page %d: %w", pgno, err)
			}
		}
		if pgno != lock {
			sum ^= ltx.ChecksumPageWithHasher(h, pgno, page)
		}
	}
	return (sum | ltx.ChecksumFlag).String(), nil
}
