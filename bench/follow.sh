#!/usr/bin/env bash
# Follow benchmark (issue 20 item 2): N tenants replicated by one litefleet
# replicate, W of them writing a row a second each for SECS seconds, while
# restore -all -f -v follows them all. Prints the lag percentiles and the
# level-0 polls beyond the writers (idle tenants cost none but the hourly
# sweep). Needs python3 and the aws CLI. Run it with a fresh S3 server:
#   N=1000 W=100 SECS=60 scripts/with-s3.sh bench/follow.sh
# "steady" leaves out the first 12 rounds: a tenant that starts writing
# after a quiet spell is seen when its host record says so (up to a
# heartbeat, 10 s); from then on within an interval.
set -euo pipefail
N=${N:-1000}; W=${W:-100}; SECS=${SECS:-60}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/litefleet-follow-bench.XXXXXX")
LF="$WORK/litefleet"
(cd "$ROOT" && go build -o "$LF" ./cmd/litefleet)
export AWS_ACCESS_KEY_ID=$LITEFLEET_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$LITEFLEET_TEST_S3_SECRET_KEY AWS_REGION=us-east-1
EP=$LITEFLEET_TEST_S3_ENDPOINT
aws --endpoint-url "$EP" s3api create-bucket --bucket bench >/dev/null
python3 - "$WORK/data" "$N" <<'PY'
import sqlite3, sys, os, uuid
d, n = sys.argv[1], int(sys.argv[2]); os.makedirs(d)
for i in range(n):
    c = sqlite3.connect(os.path.join(d, str(uuid.UUID(int=i+1, version=4)) + ".db"))
    c.execute("PRAGMA journal_mode=WAL"); c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    c.execute("INSERT INTO t(v) VALUES('seed')"); c.commit(); c.close()
PY
$LF replicate -dir "$WORK/data" -bucket bench -endpoint "$EP" >"$WORK/replicate.log" 2>&1 &
RP=$!
trap 'kill $RP $FP 2>/dev/null || true' EXIT
for _ in $(seq 600); do grep -q "ready:" "$WORK/replicate.log" && break; sleep 1; done
grep "ready:" "$WORK/replicate.log"
sleep 12 # the first host record
mkdir "$WORK/standby-parent"
$LF restore -all -o "$WORK/standby-parent/standby" -bucket bench -endpoint "$EP" -f -v -parallel 16 >"$WORK/follow.log" 2>"$WORK/follow.err" &
FP=$!
for _ in $(seq 600); do grep -q "^following:" "$WORK/follow.log" && break; sleep 1; done
grep "^following:" "$WORK/follow.log"
START_LINE=$(wc -l <"$WORK/follow.log")
python3 - "$WORK/data" "$W" "$SECS" <<'PY'
import sqlite3, sys, os, time, glob
d, w, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
conns = [sqlite3.connect(p, timeout=10) for p in sorted(glob.glob(os.path.join(d, "*.db")))[:w]]
end = time.time() + secs
while time.time() < end:
    t0 = time.time()
    for c in conns:
        c.execute("INSERT INTO t(v) VALUES('x')"); c.commit()
    time.sleep(max(0, 1 - (time.time() - t0)))
PY
sleep 3
kill -TERM $FP; wait $FP || true
tail -n +"$START_LINE" "$WORK/follow.log" > "$WORK/measured.log"
python3 - "$WORK/measured.log" "$N" "$W" "$SECS" <<'PY'
import re, sys
path, n, w, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
lags, steady, polled, rounds = [], [], 0, 0
def dur(s):
    m = re.fullmatch(r'([\d.]+)(ms|s|µs)', s)
    if not m: 
        mm = re.fullmatch(r'(\d+)m([\d.]+)s', s); return int(mm[1])*60+float(mm[2])
    v = float(m[1]); return v/1000 if m[2]=='ms' else v/1e6 if m[2]=='µs' else v
writers = set()
for line in open(path):
    m = re.match(r'followed: db=(\S+) txid=\S+ lag=(\S+)', line)
    if m:
        lags.append(dur(m[2])); writers.add(m[1])
        if rounds >= 12: steady.append(dur(m[2]))
    m = re.match(r'follow: tenants=\d+ polled=(\d+)', line)
    if m: polled += int(m[1]); rounds += 1
lags.sort()
p = lambda q: lags[min(len(lags)-1, int(q*len(lags)))] if lags else float('nan')
print(f"tenants={n} writing={w} seconds={secs} applied={len(lags)} tenants_moved={len(writers)}")
print(f"lag p50={p(.5):.3f}s p99={p(.99):.3f}s max={lags[-1] if lags else 0:.3f}s")
steady.sort()
if steady:
    print(f"steady lag p50={steady[len(steady)//2]:.3f}s p99={steady[min(len(steady)-1, int(.99*len(steady)))]:.3f}s max={steady[-1]:.3f}s")
idle_polls = max(0, polled - w*rounds)
print(f"rounds_with_activity={rounds} polls={polled} polls_beyond_writers={idle_polls} "
      f"-> per idle tenant per day ~ {idle_polls/max(1,n-w)/secs*86400:.1f} (rounds that printed a status line)")
PY
echo "logs in $WORK"
