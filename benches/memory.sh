#!/usr/bin/env bash
# Memory of a running Arbiter by policy count, and its peak while reloading (issue 15).
#
# For each size, generates the bundled schema and guards plus N route policies (the same
# shape as `benches/decision.rs`), starts `arbiter serve` on them and waits until it is
# ready and its query index is built; then:
#   steady     VmRSS before any reload
#   edit       peak RSS (VmHWM, reset through /proc/PID/clear_refs) while reloading after
#              one small file changed (what a policy author's edit does)
#   rewrite    peak RSS while reloading after every one of the N policies changed
# The target: the peak while reloading 10 000 policies <= 1.5x the steady state.
#
# Usage: benches/memory.sh [N ...]      (default: 10000 100000)
#        ARBITER_BIN=/path/to/arbiter benches/memory.sh   (that binary, no build)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=("$@")
[ ${#SIZES[@]} -eq 0 ] && SIZES=(10000 100000)
source benches/lib.sh

kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$2/status"; }
reloads() { grep -c 'policies reloaded' "$WORK/arbiter.log" || true; }
# Waits for the next reload line, then for the query index built after it (one thread).
await_reload() {
    local before=$1
    for _ in $(seq 1200); do
        [ "$(reloads)" -gt "$before" ] && break
        sleep 0.1
    done
    [ "$(reloads)" -gt "$before" ] || { echo "no reload seen" >&2; exit 1; }
    await_quiet "$2"
}

printf '%-8s %-12s %-12s %-8s %-12s %-8s\n' policies steady_MiB edit_MiB ratio rewrite_MiB ratio
for n in "${SIZES[@]}"; do
    dir="$WORK/p$n"
    rm -rf "$dir" "$WORK/data"
    mkdir -p "$dir"
    cp policies/schema.cedarschema policies/guards.cedar "$dir/"
    generate_routes "$dir/routes.cedar" "$n" a
    : > "$WORK/arbiter.log"
    RUST_LOG=info "$BIN" serve --policies "$dir" --data-dir "$WORK/data" \
        --grpc-addr 127.0.0.1:50191 --http-addr 127.0.0.1:8191 2>> "$WORK/arbiter.log" &
    pid=$!
    await_ready "$WORK/arbiter.log"
    sleep 1
    await_quiet "$pid"
    steady=$(kib VmRSS "$pid")

    echo 5 > "/proc/$pid/clear_refs"
    before=$(reloads)
    printf '\n// edited\n' >> "$dir/guards.cedar"
    await_reload "$before" "$pid"
    edit=$(kib VmHWM "$pid")

    echo 5 > "/proc/$pid/clear_refs"
    before=$(reloads)
    generate_routes "$dir/routes.cedar.new" "$n" b
    mv "$dir/routes.cedar.new" "$dir/routes.cedar"
    await_reload "$before" "$pid"
    rewrite=$(kib VmHWM "$pid")

    kill "$pid"
    wait "$pid" 2>/dev/null || true
    python3 -c "
s, e, r = $steady / 1024, $edit / 1024, $rewrite / 1024
print(f'{$n:<8} {s:<12.0f} {e:<12.0f} {e / s:<8.2f} {r:<12.0f} {r / s:<8.2f}')"
done
