#!/usr/bin/env bash
# Installs the programs litefleet's tests and demo need into .tools/bin:
# the versitygw S3 server and the real litestream commands used as peers.
# Each is built from the Go module proxy; nothing is downloaded prebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$PWD/.tools/bin"
mkdir -p "$BIN/v3"

install() { # name dir cgo module@version
  local name=$1 dir=$2 cgo=$3 mod=$4
  if [[ -x "$dir/$name" ]]; then return 0; fi
  echo "tools: installing $mod into $dir" >&2
  GOBIN="$dir" CGO_ENABLED="$cgo" go install "$mod"
}

pids=()
install versitygw "$BIN" 0 github.com/versity/versitygw/cmd/versitygw@v1.8.0 & pids+=($!)
install litestream "$BIN" 0 github.com/benbjohnson/litestream/cmd/litestream@v0.5.18 & pids+=($!)
# v0.3 writes the legacy generations layout; it needs cgo (mattn/go-sqlite3).
install litestream "$BIN/v3" 1 github.com/benbjohnson/litestream/cmd/litestream@v0.3.14 & pids+=($!)
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=1; done
exit $fail
