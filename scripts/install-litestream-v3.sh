#!/bin/sh
# Installs the legacy Litestream v0.3.14 into .tools/bin/v3/litestream.
#
# The s3browse integration tests use it to write a real v0.3 replica
# (generations/<id>/snapshots, .../wal). v0.3 links mattn/go-sqlite3, so it
# needs cgo and a C compiler; it lives in its own folder so that it never
# shadows the v0.5 `litestream` in .tools/bin. Safe to run again: it does
# nothing when the binary is there.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.tools/bin/v3"
if [ -x "$dest/litestream" ]; then
	exit 0
fi
mkdir -p "$dest"
CGO_ENABLED=1 GOBIN="$dest" go install github.com/benbjohnson/litestream/cmd/litestream@v0.3.14
echo "installed $dest/litestream (v0.3.14)"
