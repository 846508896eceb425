#!/usr/bin/env bash
# Decisions under control-plane load (issue 32): `Authorize` latency while the control plane
# is busy, as a ratio of the same paced load on an idle server.
#
# The bundled policies with N extra users in entities.json (default 2000), `arbiter serve`
# (release). Then, each for SECONDS (default 10), paced `Authorize` load (`arbiter bench
# --rate RATE --concurrency 4`, one token, GET /item/7):
#   idle      nothing else
#   loaded    the same, while 4 clients run AuthZEN `search/subject` over the N users back to
#             back, one rewrites a policy file every 0.2 s (a real reload each time), and
#             one runs `policies query --addr` back to back
# Prints p50 / p99 of both and their ratios, and how many searches and reloads ran.
#
# Usage: benches/control.sh [N] [SECONDS] [RATE]
#        ARBITER_BIN=/path/to/arbiter benches/control.sh   (that binary, no build)
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${1:-2000}
SECONDS_EACH=${2:-10}
RATE=${3:-2000}
source benches/lib.sh

dir="$WORK/policies"
cp -r policies "$dir"
python3 - "$dir/entities.json" "$USERS" <<'PY'
import json, sys
path, n = sys.argv[1], int(sys.argv[2])
entities = json.load(open(path))
for i in range(n):
    entities.append({"uid": {"type": "User", "id": f"user-{i:05}"},
                     "attrs": {"iss": "https://arbiter.local/dev", "email": f"u{i}@example.com",
                               "department": "Sales", "nationality": "NL"},
                     "parents": []})
json.dump(entities, open(path, "w"))
PY
GRPC=127.0.0.1:50192
HTTP=127.0.0.1:8192
RUST_LOG=info "$BIN" serve --policies "$dir" --data-dir "$WORK/data" \
    --grpc-addr "$GRPC" --http-addr "$HTTP" 2> "$WORK/arbiter.log" &
pid=$!
await_ready "$WORK/arbiter.log"
T=$("$BIN" token dev --client demo --scope "read" --data-dir "$WORK/data")

measure() {
    "$BIN" bench --addr "http://$GRPC" --token "$T" --method GET --path /item/7 \
        --concurrency 4 --connections 1 --rate "$RATE" --duration "$SECONDS_EACH" --json
}
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['target']['$1'])"; }

idle=$(measure)

# The control plane, busy.
search_body='{"subject":{"type":"user"},"action":{"name":"GET"},"resource":{"type":"route","id":"/item/{id}"},"context":{}}'
searcher() {
    while :; do
        curl -s -o /dev/null -H 'content-type: application/json' -H "authorization: Bearer $T" \
            -d "$search_body" "http://$HTTP/access/v1/search/subject" || true
        echo >> "$WORK/searches"
    done
}
reloader() {
    local i=0
    while :; do
        i=$((i + 1))
        printf '\n// control bench %s\n' "$i" >> "$dir/guards.cedar"
        sleep 0.2
    done
}
querier() {
    while :; do
        "$BIN" policies query --addr "http://$GRPC" --attribute scopes --json > /dev/null || true
    done
}
: > "$WORK/searches"
loaders=()
for _ in 1 2 3 4; do searcher & loaders+=($!); done
reloader & loaders+=($!)
querier & loaders+=($!)
sleep 1
reloads_before=$(grep -c 'policies reloaded' "$WORK/arbiter.log" || true)
searches_before=$(wc -l < "$WORK/searches")
loaded=$(measure)
searches=$(( $(wc -l < "$WORK/searches") - searches_before ))
reloads=$(( $(grep -c 'policies reloaded' "$WORK/arbiter.log" || true) - reloads_before ))
kill "${loaders[@]}" 2>/dev/null || true

p50i=$(echo "$idle" | field p50_us); p99i=$(echo "$idle" | field p99_us)
p50l=$(echo "$loaded" | field p50_us); p99l=$(echo "$loaded" | field p99_us)
errl=$(echo "$loaded" | field errors)
printf '%-8s %-10s %-10s\n' load p50_us p99_us
printf '%-8s %-10s %-10s\n' idle "$p50i" "$p99i"
printf '%-8s %-10s %-10s\n' loaded "$p50l" "$p99l"
python3 -c "print(f'ratio    p50 {$p50l / $p50i:.2f}x  p99 {$p99l / $p99i:.2f}x')"
echo "during the loaded run: $searches searches over $USERS users, $reloads reloads, $errl failed Authorize calls"
echo "search log lines: $(grep -c 'authzen search' "$WORK/arbiter.log" || true); decision lines: $(grep -c 'arbiter::decision' "$WORK/arbiter.log" || true)"
