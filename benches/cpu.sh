#!/usr/bin/env bash
# Server CPU per request (issue 35): utime + stime of the server process, read from
# /proc/PID/stat around a fixed `h2load -n N -t1 -c4 -m16` run, divided by N. Unlike
# throughput, it does not move with the load client sharing the machine's two cores.
#
# Arbiter (bundled policies, decision log on, text lines to a file, unless LOG=off or
# LOG_FORMAT=json) and `arbiter echo-server` (the same gRPC service answering a fixed allow),
# each loaded REPEAT times, alternately, with one framed `Authorize` (a development token,
# GET /item/42, `{"ip": "192.0.2.1"}`); the same question as Envoy's ext_authz `Check` (the
# echo answering a fixed OK); then AuthZEN `evaluation` of it over HTTP/1.1 (`h2load --h1
# -c16`) against a bare axum JSON echo (`arbiter echo-server --http`). Prints µs of server
# CPU per request for each (median of the runs) and the ratios; fails unless every decision
# Arbiter logged is an allow (h2load sees only the HTTP status, not the gRPC one).
#
# Usage: benches/cpu.sh [N] [REPEAT]          (default 200000 3)
#        LOG=off benches/cpu.sh                (RUST_LOG=warn: no decision log)
#        LOG_FORMAT=json benches/cpu.sh        (JSON decision log lines)
#        ARBITER_BIN=/path/to/arbiter benches/cpu.sh   (that binary, no build: A/B runs)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
REPEAT=${2:-3}
LOG_LEVEL=info
[ "${LOG:-on}" = off ] && LOG_LEVEL=warn
NEEDS_H2LOAD=1
source benches/lib.sh
cp -r policies "$WORK/policies"
ARBITER=127.0.0.1:50171
ECHO=127.0.0.1:50172
ECHO_HTTP=127.0.0.1:8172
RUST_LOG=$LOG_LEVEL "$BIN" serve --policies "$WORK/policies" --data-dir "$WORK/data" \
    --log-format "${LOG_FORMAT:-text}" --grpc-addr "$ARBITER" --http-addr 127.0.0.1:8171 \
    2> "$WORK/arbiter.log" &
arbiter_pid=$!
"$BIN" echo-server --grpc-addr "$ECHO" > "$WORK/echo.log" 2>&1 &
echo_pid=$!
"$BIN" echo-server --http --grpc-addr "$ECHO_HTTP" > "$WORK/echo-http.log" 2>&1 &
echo_http_pid=$!
for _ in $(seq 300); do
    listening "$ARBITER" && listening "$ECHO" && listening "$ECHO_HTTP" && listening 127.0.0.1:8171 && break
    sleep 0.1
done
TOKEN=$("$BIN" token dev --data-dir "$WORK/data" --client demo --scope read)
CONTEXT='{"ip": "192.0.2.1"}'
"$BIN" bench --write-frame "$WORK/authorize.bin" --token "$TOKEN" --method GET --path /item/42 \
    --context "$CONTEXT"
"$BIN" bench --write-frame "$WORK/check.bin" --ext-authz --token "$TOKEN" --method GET \
    --path /item/42 --context "$CONTEXT"
"$BIN" check GET /item/42 --token "$TOKEN" --context "$CONTEXT" --addr "http://$ARBITER" >/dev/null \
    || { echo "the benchmark request is not allowed" >&2; exit 1; }
printf '{"action":{"name":"GET"},"resource":{"type":"route","id":"/item/{id}"},"context":%s}' \
    "$CONTEXT" > "$WORK/evaluation.json"
curl -sf http://127.0.0.1:8171/access/v1/evaluation -H "authorization: Bearer $TOKEN" \
    -H 'content-type: application/json' -d @"$WORK/evaluation.json" | grep -q '"decision":true' \
    || { echo "the AuthZEN benchmark request is not allowed" >&2; exit 1; }

# µs of server CPU per request for one h2load run (its arguments after PID) served by PID.
run() {
    local pid=$1 before after out
    shift
    before=$(ticks "$pid")
    out=$(h2load -n "$N" -t1 "$@" 2>&1)
    after=$(ticks "$pid")
    grep -q ' 0 failed, 0 errored, 0 timeout' <<<"$out" || { echo "$out" >&2; exit 1; }
    grep -q "status codes: $N 2xx" <<<"$out" || { echo "$out" >&2; exit 1; }
    python3 -c "import os; print(($after - $before) / os.sysconf('SC_CLK_TCK') * 1e6 / $N)"
}
grpc() { run "$1" -c4 -m16 -d "$WORK/authorize.bin" -H 'content-type: application/grpc' -H 'te: trailers' "$2/arbiter.v1.Authorizer/Authorize"; }
check() { run "$1" -c4 -m16 -d "$WORK/check.bin" -H 'content-type: application/grpc' -H 'te: trailers' "$2/envoy.service.auth.v3.Authorization/Check"; }
authzen() { run "$1" --h1 -c16 -d "$WORK/evaluation.json" -H 'content-type: application/json' -H "authorization: Bearer $TOKEN" "$2/access/v1/evaluation"; }
a=(); e=(); ca=(); ce=(); za=(); ze=()
for _ in $(seq "$REPEAT"); do
    a+=("$(grpc "$arbiter_pid" "http://$ARBITER")")
    e+=("$(grpc "$echo_pid" "http://$ECHO")")
    ca+=("$(check "$arbiter_pid" "http://$ARBITER")")
    ce+=("$(check "$echo_pid" "http://$ECHO")")
    za+=("$(authzen "$arbiter_pid" http://127.0.0.1:8171)")
    ze+=("$(authzen "$echo_http_pid" "http://$ECHO_HTTP")")
done
python3 - "${a[*]}" "${e[*]}" "${ca[*]}" "${ce[*]}" "${za[*]}" "${ze[*]}" <<'PY'
import statistics, sys
def show(name, arbiter, echo):
    a = [float(x) for x in arbiter.split()]
    e = [float(x) for x in echo.split()]
    ma, me = statistics.median(a), statistics.median(e)
    print(f"server CPU per {name}: arbiter {ma:.1f} µs (runs {' '.join(f'{x:.1f}' for x in a)}), "
          f"echo {me:.1f} µs (runs {' '.join(f'{x:.1f}' for x in e)}), ratio {ma / me:.2f}")
show("Authorize (gRPC)", sys.argv[1], sys.argv[2])
show("ext_authz Check (gRPC)", sys.argv[3], sys.argv[4])
show("AuthZEN evaluation (HTTP/1.1)", sys.argv[5], sys.argv[6])
PY
lines=$(grep -c 'arbiter::decision' "$WORK/arbiter.log" || true)
allowed=$(grep -c -E 'decision="allow"|"decision":"allow"' "$WORK/arbiter.log" || true)
echo "decision lines written: $lines, of which allow: $allowed"
[ "$lines" = "$allowed" ] || { echo "some benchmark requests were denied" >&2; exit 1; }
