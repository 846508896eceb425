#!/usr/bin/env bash
# The token endpoint under load (issue 15): client_credentials with client_secret_basic, on
# SQLite, keep-alive, with h2load (Debian's `nghttp2-client`) over HTTP/1.1:
#   h2load --h1 -t1 -c64   three runs; prints tokens/s of each, the median, and the p99 of
#                          the last run from h2load's per-request log (target >= 25 000/s)
#
# Usage: benches/token.sh [SECONDS_PER_RUN]      (default 10)
#        LOG=off benches/token.sh                (RUST_LOG=warn: no decision log lines)
#        ARBITER_BIN=/path/to/arbiter benches/token.sh   (that binary, no build)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-10}
LOG_LEVEL=info
[ "${LOG:-on}" = off ] && LOG_LEVEL=warn
NEEDS_H2LOAD=1
source benches/lib.sh
cp -r policies "$WORK/policies"
HTTP=127.0.0.1:8181

eval "$("$BIN" clients create --data-dir "$WORK/data" --name bench --scopes read --export)"
RUST_LOG=$LOG_LEVEL "$BIN" serve --policies "$WORK/policies" --data-dir "$WORK/data" \
    --grpc-addr 127.0.0.1:50181 --http-addr "$HTTP" 2> "$WORK/arbiter.log" &
for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/${HTTP%:*}/${HTTP#*:}") 2>/dev/null && break
    sleep 0.1
done

BASIC=$(printf '%s:%s' "$ARBITER_CLIENT_ID" "$ARBITER_CLIENT_SECRET" | base64 -w0)
printf 'grant_type=client_credentials&scope=read' > "$WORK/body"
ask() {
    h2load --h1 -t1 -c64 --warm-up-time=1 -D "$SECONDS_PER_RUN" -d "$WORK/body" \
        -H 'content-type: application/x-www-form-urlencoded' -H "authorization: Basic $BASIC" \
        "$@" "http://$HTTP/token" 2>&1
}
# One token first: the request must be answered 200 with an access token.
curl -sf "http://$HTTP/token" -H "authorization: Basic $BASIC" -d @"$WORK/body" \
    | grep -q '"access_token"' || { echo "the token request is refused" >&2; exit 1; }

echo "log: $LOG_LEVEL; $SECONDS_PER_RUN s per run; $BIN"
RATES=()
for run in 1 2 3; do
    rm -f "$WORK/requests.tsv"   # h2load appends to its log file
    out=$(ask --log-file="$WORK/requests.tsv")
    if ! grep -q ' 0 failed, 0 errored, 0 timeout' <<<"$out" \
        || ! grep -q ' 0 3xx, 0 4xx, 0 5xx' <<<"$out"; then
        echo "h2load reported failures:" >&2; echo "$out" >&2; exit 1
    fi
    rate=$(sed -nE 's/.*finished in [^,]+, ([0-9.]+) req\/s.*/\1/p' <<<"$out")
    echo "run $run: $rate tokens/s"
    RATES+=("$rate")
done
python3 - "$WORK/requests.tsv" "${RATES[*]}" <<'PY'
import statistics, sys
# h2load's log: start (µs since epoch), status, µs until the response ended.
lat = sorted(int(line.split("\t")[2]) for line in open(sys.argv[1]) if line.strip())
rates = [float(x) for x in sys.argv[2].split()]
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"tokens/s (h2load --h1 -t1 -c64): median {statistics.median(rates):.0f}  runs {' '.join(f'{r:.0f}' for r in rates)}")
print(f"latency of the last run: p50 {p(0.5)} µs, p99 {p(0.99)} µs, max {lat[-1]} µs ({len(lat)} requests)")
PY
