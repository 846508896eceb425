#!/usr/bin/env bash
# Reload time of a large set (issue 35): from writing the file to deciding on the new set.
#
# Generates the bundled schema and guards plus N route policies (benches/lib.sh's
# `generate_routes`), starts `arbiter serve` on them, waits until it is ready and its query
# index is built, then runs `arbiter bench --reload-file routes.cedar`: ROUNDS rewrites of
# the file, each timed until the server's `Status` reports the new version.
#   EVERY=1 (default)  every policy's text changes each round: nothing is reused
#   EVERY=0            only a trailing comment changes: what a one-line edit costs
# Prints the rounds' times and the server's own reload durations.
#
# Usage: benches/reload.sh [N] [ROUNDS]      (default 10000 5)
#        EVERY=0 benches/reload.sh
#        ARBITER_BIN=/path/to/arbiter benches/reload.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
ROUNDS=${2:-5}
source benches/lib.sh
dir="$WORK/policies"
mkdir -p "$dir"
cp policies/schema.cedarschema policies/guards.cedar "$dir/"
generate_routes "$dir/routes.cedar" "$N" a
RUST_LOG=info "$BIN" serve --policies "$dir" --data-dir "$WORK/data" \
    --grpc-addr 127.0.0.1:50221 --http-addr 127.0.0.1:8221 2> "$WORK/arbiter.log" &
pid=$!
await_ready "$WORK/arbiter.log"
# Until the query index built after the first load is done (it starts after a second).
sleep 2
await_quiet "$pid"
every=--every-policy
[ "${EVERY:-1}" = 0 ] && every=
"$BIN" bench --addr http://127.0.0.1:50221 --reload-file "$dir/routes.cedar" --rounds "$ROUNDS" $every
echo "server reload durations (ms): $(grep 'policies reloaded' "$WORK/arbiter.log" | grep -o 'duration_ms=[0-9]*' | cut -d= -f2 | tr '\n' ' ')"
