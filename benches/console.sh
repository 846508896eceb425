#!/usr/bin/env bash
# The workbench at scale (issue 36): how long each console page takes with N policies, and
# what reading the console does to `Authorize`.
#
# The bundled schema, guards and console policies plus N route policies (the shape of
# `benches/decision.rs`), `arbiter serve` (release, JSON log lines, development mode on
# loopback). Then:
#   pages     each screen fetched REPEAT times through one session (curl), median and max ms
#   authorize paced `Authorize` load (`arbiter bench --rate RATE --concurrency 4`, GET
#             /svc7/items/1) for SECONDS, idle and while 2 clients fetch console pages back to
#             back (the unfiltered policy list, a filtered one, routes, one policy, decisions);
#             p50 / p99 of both and their ratio
#
# Usage: benches/console.sh [N] [SECONDS] [RATE] [REPEAT]   (default 10000 10 2000 5)
#        ARBITER_BIN=/path/to/arbiter benches/console.sh    (that binary, no build)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
SECONDS_EACH=${2:-10}
RATE=${3:-2000}
REPEAT=${4:-5}
source benches/lib.sh

dir="$WORK/policies"
mkdir -p "$dir"
cp policies/schema.cedarschema policies/guards.cedar policies/console.cedar "$dir/"
generate_routes "$dir/routes.cedar" "$N" "" 50
GRPC=127.0.0.1:50193
HTTP=127.0.0.1:8193
RUST_LOG=info "$BIN" serve --policies "$dir" --data-dir "$WORK/data" --log-format json \
    --grpc-addr "$GRPC" --http-addr "$HTTP" 2> "$WORK/arbiter.log" &
await_ready "$WORK/arbiter.log"
T=$("$BIN" token dev --client demo --scope "read" --data-dir "$WORK/data")
JAR="$WORK/cookies"
curl -s -o /dev/null -c "$JAR" -b "$JAR" -L "http://$HTTP/console/login"

measure() {
    "$BIN" bench --addr "http://$GRPC" --token "$T" --method GET --path /svc7/items/1 \
        --concurrency 4 --connections 1 --rate "$RATE" --duration "$SECONDS_EACH" --json
}
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['target']['$1'])"; }
# Some decisions for the Decisions screen.
"$BIN" bench --addr "http://$GRPC" --token "$T" --method GET --path /svc7/items/1 \
    --concurrency 2 --connections 1 --rate 500 --duration 2 --json > /dev/null

PAGES=(
    "/console"
    "/console/policies"
    "/console/policies?annotation=tag%3Dt7&scope=read"
    "/console/policies?offset=9950"
    "/console/policies/route-4242"
    "/console/routes"
    "/console/routes?offset=9900"
    "/console/decisions"
    "/console/decisions?route=svc7"
)
printf '%-52s %8s %8s %8s\n' page status median_ms max_ms
for page in "${PAGES[@]}"; do
    times=()
    status=
    for _ in $(seq "$REPEAT"); do
        out=$(curl -s -o /dev/null -b "$JAR" -w '%{http_code} %{time_total}' "http://$HTTP$page")
        status=${out% *}
        times+=("${out#* }")
    done
    python3 - "$page" "$status" "${times[@]}" <<'PY'
import statistics, sys
page, status, times = sys.argv[1], sys.argv[2], [float(t) * 1000 for t in sys.argv[3:]]
print(f"{page:<52} {status:>8} {statistics.median(times):>8.1f} {max(times):>8.1f}")
PY
done

idle=$(measure)
reader() {
    while :; do
        for page in "${PAGES[@]}"; do
            curl -s -o /dev/null -b "$JAR" "http://$HTTP$page" || true
            echo >> "$WORK/pages"
        done
    done
}
: > "$WORK/pages"
loaders=()
for _ in 1 2; do reader & loaders+=($!); done
sleep 1
before=$(wc -l < "$WORK/pages")
loaded=$(measure)
pages=$(( $(wc -l < "$WORK/pages") - before ))
kill "${loaders[@]}" 2>/dev/null || true

p50i=$(echo "$idle" | field p50_us); p99i=$(echo "$idle" | field p99_us)
p50l=$(echo "$loaded" | field p50_us); p99l=$(echo "$loaded" | field p99_us)
errl=$(echo "$loaded" | field errors)
printf '%-8s %-10s %-10s\n' load p50_us p99_us
printf '%-8s %-10s %-10s\n' idle "$p50i" "$p99i"
printf '%-8s %-10s %-10s\n' console "$p50l" "$p99l"
python3 -c "print(f'ratio    p50 {$p50l / $p50i:.2f}x  p99 {$p99l / $p99i:.2f}x')"
echo "during the loaded run: $pages console pages served, $errl failed Authorize calls"
