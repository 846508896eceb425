#!/usr/bin/env bash
# Authorize over the wire, as a ratio of a bare gRPC echo of the same messages (issue 15).
#
# Builds release, starts Arbiter (bundled policies, decision log on, to a file) and
# `arbiter echo-server` (the same service answering a fixed allow), frames one `Authorize`
# request (a cached development token, GET /item/42, `{"ip": "192.0.2.1"}` in the context)
# and loads both with h2load (Debian's `nghttp2-client`), alternately, three times each:
#   throughput  h2load -t1 -c4 -m16   (median Arbiter/echo ratio; target >= 0.75, log off >= 0.85)
#   round trip  h2load -t1 -c1 -m1    (median mean-latency ratio; target <= 1.1)
#   paced p99   `arbiter bench --rate` at half the echo's peak (target <= 1.2)
# and AuthZEN `evaluation` over HTTP/1.1 (the same token, route and context) against a bare
# axum JSON echo (`arbiter echo-server --http`), alternately, three times each:
#   authzen     h2load --h1 -t1 -c16      (median Arbiter/echo ratio; target >= 0.75)
#
# Usage: benches/wire.sh [SECONDS_PER_RUN]      (default 10)
#        LOG=off benches/wire.sh                (Arbiter with RUST_LOG=warn: no decision log)
#        ARBITER_BIN=/path/to/arbiter benches/wire.sh   (that binary, no build: A/B runs)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-10}
LOG_LEVEL=info
[ "${LOG:-on}" = off ] && LOG_LEVEL=warn

NEEDS_H2LOAD=1
source benches/lib.sh
cp -r policies "$WORK/policies"
ARBITER=127.0.0.1:50161
ECHO=127.0.0.1:50162
ARBITER_HTTP=127.0.0.1:8161
ECHO_HTTP=127.0.0.1:8162

RUST_LOG=$LOG_LEVEL "$BIN" serve --policies "$WORK/policies" --data-dir "$WORK/data" \
    --grpc-addr "$ARBITER" --http-addr "$ARBITER_HTTP" 2> "$WORK/arbiter.log" &
"$BIN" echo-server --grpc-addr "$ECHO" > "$WORK/echo.log" 2>&1 &
"$BIN" echo-server --http --grpc-addr "$ECHO_HTTP" > "$WORK/echo-http.log" 2>&1 &
for _ in $(seq 200); do
    if listening "$ARBITER" && listening "$ECHO" && listening "$ARBITER_HTTP" \
        && listening "$ECHO_HTTP"; then break; fi
    sleep 0.1
done

TOKEN=$("$BIN" token dev --data-dir "$WORK/data" --client demo --scope read)
CONTEXT='{"ip": "192.0.2.1"}'
"$BIN" bench --write-frame "$WORK/authorize.bin" --token "$TOKEN" --method GET --path /item/42 \
    --context "$CONTEXT"
# The request must be an allow (the same answer the echo gives), or the comparison is void.
"$BIN" check GET /item/42 --token "$TOKEN" --context "$CONTEXT" --addr "http://$ARBITER" >/dev/null \
    || { echo "the benchmark request is not allowed" >&2; exit 1; }

# The same question as AuthZEN asks it: the token's bearer on the route, the same context.
printf '{"action":{"name":"GET"},"resource":{"type":"route","id":"/item/{id}"},"context":%s}' \
    "$CONTEXT" > "$WORK/evaluation.json"
curl -sf "http://$ARBITER_HTTP/access/v1/evaluation" -H "authorization: Bearer $TOKEN" \
    -H 'content-type: application/json' -d @"$WORK/evaluation.json" | grep -q '"decision":true' \
    || { echo "the AuthZEN benchmark request is not allowed" >&2; exit 1; }

# h2load against one server: prints "<req/s> <mean latency in µs>".
load() {
    load_with -d "$WORK/authorize.bin" -H 'content-type: application/grpc' -H 'te: trailers' "$@"
}

load_authzen() {
    load_with --h1 -d "$WORK/evaluation.json" -H 'content-type: application/json' \
        -H "authorization: Bearer $TOKEN" "$@"
}

load_with() {
    local out
    out=$(h2load -t1 --warm-up-time=1 -D "$SECONDS_PER_RUN" "$@" 2>&1)
    if ! grep -q ' 0 failed, 0 errored, 0 timeout' <<<"$out" \
        || ! grep -q ' 0 3xx, 0 4xx, 0 5xx' <<<"$out"; then
        echo "h2load reported failures:" >&2; echo "$out" >&2; exit 1
    fi
    python3 - "$out" <<'PY'
import re, sys
out = sys.argv[1]
rps = float(re.search(r"finished in [^,]+, ([0-9.]+) req/s", out).group(1))
mean = re.search(r"time for request:\s+\S+\s+\S+\s+([0-9.]+)(us|ms|s)", out)
scale = {"us": 1, "ms": 1e3, "s": 1e6}[mean.group(2)]
print(f"{rps:.0f} {float(mean.group(1)) * scale:.0f}")
PY
}

url() { echo "http://$1/arbiter.v1.Authorizer/Authorize"; }

echo "log: $LOG_LEVEL; $SECONDS_PER_RUN s per run; $BIN"
THROUGHPUT=()
ROUND_TRIP=()
ECHO_PEAK=()
for round in 1 2 3; do
    read -r e_rps _ < <(load -c4 -m16 "$(url "$ECHO")")
    read -r a_rps _ < <(load -c4 -m16 "$(url "$ARBITER")")
    read -r _ e_mean < <(load -c1 -m1 "$(url "$ECHO")")
    read -r _ a_mean < <(load -c1 -m1 "$(url "$ARBITER")")
    echo "round $round: throughput echo $e_rps req/s, arbiter $a_rps req/s; round trip echo ${e_mean} µs, arbiter ${a_mean} µs"
    THROUGHPUT+=("$(python3 -c "print($a_rps / $e_rps)")")
    ROUND_TRIP+=("$(python3 -c "print($a_mean / $e_mean)")")
    ECHO_PEAK+=("$e_rps")
done

AUTHZEN=()
for round in 1 2 3; do
    read -r e_rps _ < <(load_authzen -c16 "http://$ECHO_HTTP/access/v1/evaluation")
    read -r a_rps _ < <(load_authzen -c16 "http://$ARBITER_HTTP/access/v1/evaluation")
    echo "round $round: AuthZEN evaluation echo $e_rps req/s, arbiter $a_rps req/s"
    AUTHZEN+=("$(python3 -c "print($a_rps / $e_rps)")")
done

# Paced at half the echo's median peak, both servers, with the load tool that reports p99.
HALF=$(python3 -c "import statistics as s; print(int(s.median([${ECHO_PEAK[*]/%/,}]) / 2))")
PACED=$("$BIN" bench --addr "http://$ARBITER" --echo-floor --token "$TOKEN" --context "$CONTEXT" \
    --rate "$HALF" --duration "$SECONDS_PER_RUN" --connections 1 --concurrency 64 --json)

python3 - "$HALF" "$PACED" "${THROUGHPUT[*]}" "${ROUND_TRIP[*]}" "${AUTHZEN[*]}" <<'PY'
import json, statistics, sys
half, paced, throughput, round_trip, authzen = sys.argv[1:6]
t = [float(x) for x in throughput.split()]
r = [float(x) for x in round_trip.split()]
z = [float(x) for x in authzen.split()]
print(f"throughput ratio (arbiter/echo, -c4 -m16): median {statistics.median(t):.2f}  runs {' '.join(f'{x:.2f}' for x in t)}")
print(f"round-trip ratio (arbiter/echo, -c1 -m1):  median {statistics.median(r):.2f}  runs {' '.join(f'{x:.2f}' for x in r)}")
print(f"AuthZEN ratio (arbiter/axum JSON echo, --h1 -c16): median {statistics.median(z):.2f}  runs {' '.join(f'{x:.2f}' for x in z)}")
doc = json.loads(paced.strip().splitlines()[-1])
a, e = doc["target"]["p99_us"], doc["echo"]["p99_us"]
print(f"paced p99 at {half} req/s: arbiter {a} µs, echo {e} µs, ratio {doc['p99_ratio']:.2f}")
PY
