#!/usr/bin/env bash
# Server CPU per request (issue 35): utime + stime of the server process, read from
# /proc/PID/stat around a fixed `h2load -n N -t1 -c4 -m16` run, divided by N. Unlike
# throughput, it does not move with the load client sharing the machine's two cores.
#
# Arbiter (bundled policies, decision log on, text lines to a file, unless LOG=off or
# LOG_FORMAT=json) and `arbiter echo-server` (the same gRPC service answering a fixed allow),
# each loaded REPEAT times, alternately, with one framed `Authorize` (a development token,
# GET /item/42, `{"ip": "192.0.2.1"}`). Prints µs of server CPU per request for both (median
# of the runs) and the ratio.
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
RUST_LOG=$LOG_LEVEL "$BIN" serve --policies "$WORK/policies" --data-dir "$WORK/data" \
    --log-format "${LOG_FORMAT:-text}" --grpc-addr "$ARBITER" --http-addr 127.0.0.1:8171 \
    2> "$WORK/arbiter.log" &
arbiter_pid=$!
"$BIN" echo-server --grpc-addr "$ECHO" > "$WORK/echo.log" 2>&1 &
echo_pid=$!
listening() { (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; }
for _ in $(seq 300); do
    listening "$ARBITER" && listening "$ECHO" && break
    sleep 0.1
done
TOKEN=$("$BIN" token dev --data-dir "$WORK/data" --client demo --scope read)
CONTEXT='{"ip": "192.0.2.1"}'
"$BIN" bench --write-frame "$WORK/authorize.bin" --token "$TOKEN" --method GET --path /item/42 \
    --context "$CONTEXT"
"$BIN" check GET /item/42 --token "$TOKEN" --context "$CONTEXT" --addr "http://$ARBITER" >/dev/null \
    || { echo "the benchmark request is not allowed" >&2; exit 1; }

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# µs of server CPU per request for one run against ADDR served by PID.
run() {
    local before after out
    before=$(ticks "$2")
    out=$(h2load -n "$N" -t1 -c4 -m16 -d "$WORK/authorize.bin" \
        -H 'content-type: application/grpc' -H 'te: trailers' "http://$1/arbiter.v1.Authorizer/Authorize" 2>&1)
    after=$(ticks "$2")
    grep -q ' 0 failed, 0 errored, 0 timeout' <<<"$out" || { echo "$out" >&2; exit 1; }
    python3 -c "import os; print(($after - $before) / os.sysconf('SC_CLK_TCK') * 1e6 / $N)"
}
a=(); e=()
for _ in $(seq "$REPEAT"); do
    a+=("$(run "$ARBITER" "$arbiter_pid")")
    e+=("$(run "$ECHO" "$echo_pid")")
done
python3 - "${a[*]}" "${e[*]}" <<'PY'
import statistics, sys
a = [float(x) for x in sys.argv[1].split()]
e = [float(x) for x in sys.argv[2].split()]
ma, me = statistics.median(a), statistics.median(e)
print(f"server CPU per Authorize: arbiter {ma:.1f} µs (runs {' '.join(f'{x:.1f}' for x in a)})")
print(f"                          echo    {me:.1f} µs (runs {' '.join(f'{x:.1f}' for x in e)})")
print(f"ratio arbiter/echo: {ma / me:.2f}")
PY
echo "decision lines written: $(grep -c 'arbiter::decision' "$WORK/arbiter.log" || true)"
