#!/usr/bin/env bash
# Arbiter against its peer Cerbos, and against the floor (a bare gRPC echo), on the same work
# (issue 35): one `GET /item/42` decision from 192.0.2.1 with fraud score 10, on the same
# ES256 token, under the same three rules: scope `read` on `GET /item/{id}`, a forbid on
# 203.0.113.0/24, a forbid on fraud score > 80 (benches/peers/arbiter/peers.cedar and
# benches/peers/cerbos/item.yaml).
#
# Both verify the token on every request: signature (the same public key: Arbiter's
# development issuer key, given to Cerbos as a local JWKS file), expiry, issuer and audience
# (Cerbos checks the last two in its policy's condition, as its users do). What each caches:
#   Arbiter  verified tokens by SHA-256 digest until their expiry (the claims, not the
#            decision); the compiled policy set and its per-route slices.
#   Cerbos   the signatures it verified (`auxData.jwt.cacheSize`, 256 by default, deprecated
#            in 0.55 but still read): a token seen before is re-parsed and its expiry
#            re-checked without the signature check; its compiled policies.
# Neither caches decisions. Both write a decision log line per request to a file (Arbiter's
# text lines; Cerbos's audit `file` backend with decision logs on), unless LOG=off.
#
# Each server is loaded with `h2load -n N -t1 -c4 -m16` REPEAT times, in turn. Reported per
# server: requests per second, and server CPU per request (utime + stime from /proc/PID/stat
# around the run, divided by N; unlike throughput it does not move with the load client
# sharing the machine's two cores). Medians of the runs, then Arbiter's ratios.
#
# Needs h2load (Debian `nghttp2-client`), npm (Cerbos is fetched from npm at run time as
# @cerbos/cerbos-linux-x64 into target/peers/, never committed) and Cerbos's Python SDK
# (`python3 -m pip install cerbos`) to write its request.
#
# Usage: benches/peers.sh [N] [REPEAT]          (default 100000 3)
#        LOG=off benches/peers.sh                (no decision log on either side)
#        CERBOS_VERSION=0.55.0 benches/peers.sh  (the Cerbos release to fetch)
#        ARBITER_BIN=/path/to/arbiter benches/peers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
REPEAT=${2:-3}
CERBOS_VERSION=${CERBOS_VERSION:-0.55.0}
LOG=${LOG:-on}
python3 -c 'import cerbos' 2>/dev/null || { echo "needs Cerbos's SDK: python3 -m pip install cerbos" >&2; exit 1; }
command -v npm >/dev/null || { echo "needs npm (to fetch Cerbos)" >&2; exit 1; }
NEEDS_H2LOAD=1
source benches/lib.sh

# Cerbos, from npm.
CERBOS_DIR=$PWD/target/peers/cerbos-$CERBOS_VERSION
CERBOS=$CERBOS_DIR/package/cerbos-linux-x64
if [ ! -x "$CERBOS" ]; then
    mkdir -p "$CERBOS_DIR"
    (cd "$CERBOS_DIR" && npm pack -q "@cerbos/cerbos-linux-x64@$CERBOS_VERSION" >/dev/null \
        && tar xzf cerbos-cerbos-linux-x64-*.tgz && chmod +x package/cerbos-linux-x64)
fi

ARBITER=127.0.0.1:50181
ECHO=127.0.0.1:50182
CERBOS_GRPC=127.0.0.1:50183

# The token and the key both sides verify it with.
mkdir -p "$WORK/arbiter-policies" "$WORK/cerbos-policies"
TOKEN=$("$BIN" token dev --data-dir "$WORK/data" --client demo --scope read)
printf '[dev_issuer]\naudience = "another-api"\n' > "$WORK/other.toml"
OTHER_AUDIENCE=$("$BIN" token dev --config "$WORK/other.toml" --data-dir "$WORK/data" --client demo --scope read)
NO_READ=$("$BIN" token dev --data-dir "$WORK/data" --client demo --scope write)
claims() { cut -d. -f"$2" <<<"$1" | python3 -c 'import base64, json, sys; s = sys.stdin.read().strip(); print(json.dumps(json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))))'; }
KID=$(claims "$TOKEN" 1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["kid"])')
ISSUER=$(claims "$TOKEN" 2 | python3 -c 'import json, sys; print(json.load(sys.stdin)["iss"])')
AUDIENCE=$(claims "$TOKEN" 2 | python3 -c 'import json, sys; print(json.load(sys.stdin)["aud"])')
python3 benches/peers/cerbos/request.py jwks "$WORK/data/keys/dev-issuer-es256.p8" "$KID" "$WORK/jwks.json"

# Arbiter: the bundled schema and the three rules.
cp policies/schema.cedarschema benches/peers/arbiter/peers.cedar "$WORK/arbiter-policies/"
log_level=info
[ "$LOG" = off ] && log_level=warn
RUST_LOG=$log_level "$BIN" serve --policies "$WORK/arbiter-policies" --data-dir "$WORK/data" \
    --grpc-addr "$ARBITER" --http-addr 127.0.0.1:8181 2> "$WORK/arbiter.log" &
arbiter_pid=$!
"$BIN" echo-server --grpc-addr "$ECHO" > "$WORK/echo.log" 2>&1 &
echo_pid=$!

# Cerbos: the same rules, the issuer and audience written in.
sed -e "s|\${ISSUER}|$ISSUER|" -e "s|\${AUDIENCE}|$AUDIENCE|" benches/peers/cerbos/item.yaml \
    > "$WORK/cerbos-policies/item.yaml"
audit=false
[ "$LOG" = off ] || audit=true
cat > "$WORK/cerbos.yaml" <<YAML
server:
  httpListenAddr: "127.0.0.1:50184"
  grpcListenAddr: "$CERBOS_GRPC"
storage:
  driver: disk
  disk:
    directory: "$WORK/cerbos-policies"
    watchForChanges: false
auxData:
  jwt:
    keySets:
      - id: arbiter-dev
        local:
          file: "$WORK/jwks.json"
audit:
  enabled: $audit
  accessLogsEnabled: false
  decisionLogsEnabled: true
  backend: file
  file:
    path: "$WORK/cerbos-decisions.log"
telemetry:
  disabled: true
YAML
CERBOS_NO_TELEMETRY=1 "$CERBOS" server --config "$WORK/cerbos.yaml" --log-level warn > "$WORK/cerbos.log" 2>&1 &
cerbos_pid=$!

for _ in $(seq 300); do
    listening "$ARBITER" && listening "$ECHO" && listening "$CERBOS_GRPC" && break
    sleep 0.1
done

# Both must answer the question as the rules say before either is timed.
CONTEXT='{"ip": "192.0.2.1", "fraud_score": 10}'
decide() { "$BIN" check GET "$1" --token "$2" --context "$3" --addr "http://$ARBITER" >/dev/null 2>&1; }
decide /item/42 "$TOKEN" "$CONTEXT" || { echo "arbiter refused the benchmark request" >&2; exit 1; }
# A signature that does not verify: its first character changed (all six of its bits count,
# unlike the last's).
signature=${TOKEN##*.}
other=A
[ "${signature:0:1}" = A ] && other=B
TAMPERED="${TOKEN%.*}.$other${signature:1}"
for refused in "$TOKEN|{\"ip\": \"203.0.113.7\"}" "$TOKEN|{\"fraud_score\": 90}" \
    "$OTHER_AUDIENCE|$CONTEXT" "$NO_READ|$CONTEXT" "$TAMPERED|$CONTEXT"; do
    if decide /item/42 "${refused%%|*}" "${refused#*|}"; then
        echo "arbiter allowed what the rules refuse: context ${refused#*|}" >&2
        exit 1
    fi
done
python3 benches/peers/cerbos/request.py check "$CERBOS_GRPC" "$TOKEN" "$OTHER_AUDIENCE" "$NO_READ" \
    || { cat "$WORK/cerbos.log" >&2; exit 1; }

"$BIN" bench --write-frame "$WORK/arbiter.bin" --token "$TOKEN" --method GET --path /item/42 \
    --context "$CONTEXT"
python3 benches/peers/cerbos/request.py frame "$TOKEN" "$WORK/cerbos.bin"

# "req/s µs-per-request" for one run of FRAME against URL, served by PID.
run() {
    local before after out
    before=$(ticks "$3")
    out=$(h2load -n "$N" -t1 -c4 -m16 -d "$2" -H 'content-type: application/grpc' -H 'te: trailers' "$1" 2>&1)
    after=$(ticks "$3")
    grep -q ' 0 failed, 0 errored, 0 timeout' <<<"$out" || { echo "$out" >&2; exit 1; }
    python3 -c "
import os, re, sys
rate = re.search(r'finished in [^,]+, ([0-9.]+) req/s', sys.stdin.read()).group(1)
print(rate, ($after - $before) / os.sysconf('SC_CLK_TCK') * 1e6 / $N)" <<<"$out"
}
results=()
for _ in $(seq "$REPEAT"); do
    results+=("arbiter $(run "http://$ARBITER/arbiter.v1.Authorizer/Authorize" "$WORK/arbiter.bin" "$arbiter_pid")")
    results+=("cerbos $(run "http://$CERBOS_GRPC/cerbos.svc.v1.CerbosService/CheckResources" "$WORK/cerbos.bin" "$cerbos_pid")")
    results+=("echo $(run "http://$ECHO/arbiter.v1.Authorizer/Authorize" "$WORK/arbiter.bin" "$echo_pid")")
done
printf '%s\n' "${results[@]}" | python3 -c "
import statistics, sys
runs = {}
for line in sys.stdin:
    name, rate, cpu = line.split()
    runs.setdefault(name, []).append((float(rate), float(cpu)))
med = {n: (statistics.median(r for r, _ in v), statistics.median(c for _, c in v)) for n, v in runs.items()}
print(f'decision log: $LOG; h2load -n $N -t1 -c4 -m16, $REPEAT runs each, medians; Cerbos $CERBOS_VERSION')
print(f'| server | req/s | server CPU µs/request | runs (µs) |')
print(f'|---|---|---|---|')
for name in ('arbiter', 'cerbos', 'echo'):
    rate, cpu = med[name]
    print(f'| {name} | {rate:.0f} | {cpu:.1f} | {\" / \".join(f\"{c:.1f}\" for _, c in runs[name])} |')
a, c, e = med['arbiter'], med['cerbos'], med['echo']
print(f'Arbiter vs Cerbos: {a[0] / c[0]:.2f}x the throughput, {a[1] / c[1]:.2f} of the CPU per request')
print(f'Arbiter vs echo:   {a[1] / e[1]:.2f}x the CPU per request')
"
echo "decision lines: arbiter $(grep -c 'arbiter::decision' "$WORK/arbiter.log" || true), cerbos $(cat "$WORK/cerbos-decisions.log" 2>/dev/null | wc -l)"
# h2load sees only HTTP statuses: every timed request must have been an allow on both sides.
if [ "$LOG" != off ]; then
    timed=$((N * REPEAT))
    allowed=$(grep -c 'decision="allow"' "$WORK/arbiter.log" || true)
    [ "$allowed" -ge "$timed" ] || { echo "arbiter allowed $allowed of $timed" >&2; exit 1; }
    allowed=$(grep -c 'EFFECT_ALLOW' "$WORK/cerbos-decisions.log" || true)
    [ "$allowed" -ge "$timed" ] || { echo "cerbos allowed $allowed of $timed" >&2; exit 1; }
fi
