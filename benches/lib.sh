# Shared by the benchmark scripts (sourced, from the repository root): the binary under test
# and a scratch directory that goes away, with every server the script started, on exit.
#
#   BIN    ARBITER_BIN if set (that binary, no build: A/B runs), else a fresh release build
#   WORK   a temporary directory
# With NEEDS_H2LOAD=1 set first, it fails at once (before any build) when h2load (Debian's
# `nghttp2-client`) is missing.

if [ "${NEEDS_H2LOAD:-0}" = 1 ] && ! command -v h2load >/dev/null; then
    echo "needs h2load: apt-get install nghttp2-client" >&2
    exit 1
fi

if [ -n "${ARBITER_BIN:-}" ]; then
    BIN=$ARBITER_BIN
else
    cargo build --release -q
    BIN=$PWD/target/release/arbiter
fi
WORK=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

# generate_routes FILE N [SALT] [TAGS]: the bundled shape of a large set, N route policies
# (one endpoint each; `@scopes` cycling through four scopes). A SALT writes `@revision("SALT")`
# on each, so changing it changes every policy's text (and the set's version); TAGS writes
# `@tag("t<i mod TAGS>")`. With the bundled schema and guards beside it.
generate_routes() {
    python3 - "$1" "$2" "${3:-}" "${4:-0}" <<'PY'
import sys
path, n, salt, tags = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
scopes = ["read", "write", "admin", "fido"]
with open(path, "w") as f:
    for i in range(n):
        s = scopes[i % 4]
        f.write(f'@id("route-{i}")\n@scopes("{s}")\n')
        if salt:
            f.write(f'@revision("{salt}")\n')
        if tags:
            f.write(f'@tag("t{i % tags}")\n')
        f.write(f'permit (principal, action == Action::"GET", resource == Endpoint::"/svc{i}/items/{{id}}")\n'
                f'when {{ context.scopes.contains("{s}") }};\n')
PY
}

# await_ready LOG: until the server writing LOG says it is ready; fails, showing LOG, if it
# never does within two minutes.
await_ready() {
    for _ in $(seq 1200); do
        grep -q 'arbiter ready' "$1" && return
        sleep 0.1
    done
    cat "$1" >&2
    exit 1
}

# await_quiet PID: until the server PID runs no reload or query-index thread (what follows a
# load has ended).
await_quiet() {
    for _ in $(seq 1200); do
        if ! grep -qE 'policy-(reload|query-index)' /proc/"$1"/task/*/comm 2>/dev/null; then
            return
        fi
        sleep 0.1
    done
}

# listening HOST:PORT: whether something accepts connections there.
listening() { (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; }

# ticks PID: the process's CPU time so far (utime + stime), in clock ticks.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
