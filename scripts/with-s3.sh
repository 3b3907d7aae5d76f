#!/usr/bin/env bash
# Runs a command with a fresh versitygw S3 server on 127.0.0.1, and stops the
# server afterwards. The command finds it through LITEFLEET_TEST_S3_*.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VGW="$ROOT/.tools/bin/versitygw"
[[ -x "$VGW" ]] || { echo "with-s3: $VGW missing: run make tools" >&2; exit 1; }

DIR="$(mktemp -d "${TMPDIR:-/tmp}/litefleet-s3.XXXXXX")"
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT=""
for _ in $(seq 1 50); do
  p=$((20000 + RANDOM % 20000))
  if ! listening "$p"; then PORT=$p; break; fi
done
[[ -n "$PORT" ]] || { echo "with-s3: no free port found" >&2; exit 1; }
export LITEFLEET_TEST_S3_ENDPOINT="http://127.0.0.1:$PORT"
export LITEFLEET_TEST_S3_ACCESS_KEY="litefleet-test"
export LITEFLEET_TEST_S3_SECRET_KEY="litefleet-test-secret"
export LITEFLEET_TEST_S3_DIR="$DIR"

"$VGW" --access "$LITEFLEET_TEST_S3_ACCESS_KEY" --secret "$LITEFLEET_TEST_S3_SECRET_KEY" \
  --port "127.0.0.1:$PORT" --quiet posix "$DIR" >"$DIR.log" 2>&1 &
VPID=$!
cleanup() { kill "$VPID" 2>/dev/null || true; wait "$VPID" 2>/dev/null || true; rm -rf "$DIR" "$DIR.log"; }
trap cleanup EXIT

for _ in $(seq 1 200); do
  if listening "$PORT"; then break; fi
  if ! kill -0 "$VPID" 2>/dev/null; then echo "with-s3: versitygw exited:" >&2; cat "$DIR.log" >&2; exit 1; fi
  sleep 0.05
done
echo "with-s3: versitygw ready at $LITEFLEET_TEST_S3_ENDPOINT" >&2
"$@"
