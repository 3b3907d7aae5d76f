#!/usr/bin/env bash
# Runs every fuzz target of a parser of untrusted bytes for a few seconds
# each (FUZZTIME, default 2s). `go test -fuzz` takes one target per run and
# links the test binary each time, so each package's binary is built once
# with fuzzing instrumentation and run once per target, in the package's
# folder, with the same corpus cache as `go test -fuzz`. make test calls it
# after the main run. A failure stops the run; the failing input is written
# under the package's testdata/fuzz/TARGET/, where it becomes a seed that
# plain `go test` runs.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-2s}
GO=${GO:-go}

# package: targets (what each parses)
targets=(
  "hosts FuzzDecodeClaim FuzzDecodeBeat FuzzDecodeRecord"                 # lock.json, heartbeats, host records (gzip JSON)
  "layout FuzzParseArchive FuzzLTXObject FuzzParseTenantKey"            # archive keys, LTX keys, every key under a tenant (v0.3 layout too)
  "s3browse FuzzDecodeListV2"                                             # ListObjectsV2 XML
  "restore FuzzApplyLTX"                                                  # LTX headers and pages in restore
  "replication FuzzLoadPageTable"                                         # the page table file
  "conf FuzzLoadConfig"                                                   # litestream.yml
  "untrusted FuzzPrintable"                                               # text shown to people
)

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
module=$($GO list -m)
cache=$($GO env GOCACHE)/fuzz
start=$SECONDS
n=0
for line in "${targets[@]}"; do
  read -r pkg names <<<"$line"
  $GO test -c -fuzz=. -o "$bin/$pkg.test" "./$pkg"
  for name in $names; do
    echo "fuzz: $pkg $name for $FUZZTIME" >&2
    run() { (cd "$pkg" && "$bin/$pkg.test" -test.run '^$' -test.fuzz "^${name}\$" -test.fuzztime "$FUZZTIME" \
      -test.fuzzcachedir "$cache/$module/$pkg" 2>&1); }
    # Go's fuzzing engine can stop a short run with "context deadline
    # exceeded" and no failing input (seen in CI on FuzzParseArchive and
    # FuzzApplyLTX): that run says nothing of the code; it runs once more.
    ok=1
    out=$(run) || ok=0
    if ((!ok)) && [[ $out == *"context deadline exceeded"* && $out != *"Failing input written"* ]]; then
      echo "fuzz: $pkg $name stopped by the fuzzing engine's deadline without a failing input: run again" >&2
      ok=1
      out=$(run) || ok=0
    fi
    if ((!ok)); then
      printf '%s\n' "$out" >&2
      echo "fuzz: $pkg $name FAILED (rerun: go test -run '^$' -fuzz '^${name}\$' ./$pkg)" >&2
      exit 1
    fi
    n=$((n + 1))
  done
done
echo "fuzz: $n targets passed in $((SECONDS - start))s" >&2
