#!/usr/bin/env bash
# Benchmarks `litefleet restore` against the real `litestream restore` on the
# same replicas in the same run (issue 4): one large database, and a fleet of
# small tenants restored with `restore -all` against a loop of
# `litestream restore`. Prints the timings and both ratios.
#
#   bench/restore.sh                                  # 200 MB + 100 × 2 MB, 3 runs
#   bench/restore.sh -big-mb 50 -tenants 20 -runs 1   # a quick look
#   bench/restore.sh -cpuprofile /tmp/restore.prof    # and a CPU profile
#   bench/restore.sh -all-runs 20 -tenants 1000 -tenant-kb 64 -parallel 16
#                                  # only restore -all, 20 times in a row (issue 16)
#
# It builds the tools and bin/litefleet, and runs against a fresh versitygw
# started by scripts/with-s3.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/tools.sh
CGO_ENABLED=0 go build -o bin/litefleet ./cmd/litefleet
exec scripts/with-s3.sh go run ./bench/restore -litefleet bin/litefleet "$@"
