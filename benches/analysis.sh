#!/usr/bin/env bash
# How long the policy proofs take (issue 16): `arbiter policies analyze`, the properties of
# `arbiter policies test`, and `arbiter policies compare`, on three sets:
#   bundled   the bundled policies/ (24 routes × methods, 19 policies, 7 properties)
#   janssen   a Janssen-config-API-sized design: 140 operations on 56 paths, imported from a
#             generated OpenAPI document with `arbiter openapi import` (read: the resource's
#             readonly scope OR the all-APIs read scope; writes and deletes likewise), beside
#             the bundled guards
#   1000      1 000 generated route policies (scope conditions of one to three scopes, with
#             `||` alternatives), beside the bundled guards and a forbid per tenth route
# Needs cvc5 1.3 as `CVC5` (python3 -m pip install cvc5==1.3.2; CVC5=$PWD/tools/cvc5).
#
# Usage: benches/analysis.sh                      (builds release)
#        ARBITER_BIN=/path/to/arbiter benches/analysis.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${CVC5:=$PWD/tools/cvc5}"
export CVC5
source benches/lib.sh

base() { # a policy directory with the bundled schema and guards
    mkdir -p "$1"
    cp policies/schema.cedarschema policies/guards.cedar "$1/"
}

base "$WORK/janssen"
python3 - "$WORK/janssen.yaml" <<'EOF'
import sys
resources = ["attributes", "acrs", "cache", "clients", "config", "cors", "custom-scripts",
    "fido2", "groups", "jwks", "ldap", "logging", "oauth-scopes", "organization", "saml",
    "scim", "session", "smtp", "sql", "stat", "uma-resources", "users", "agama", "assets",
    "auth-server-health", "plugins", "properties", "ssa"]
scopes, paths = {}, []
for r in resources:
    base = f"https://jans.io/oauth/config/{r}"
    for s in ("readonly", "write", "delete"):
        scopes[f"{base}.{s}"] = f"{r} {s}"
    req = lambda s: [{"oauth2": [f"{base}.{s}"]}, {"oauth2": [f"https://jans.io/oauth/config/{s}-all"]}]
    paths.append((f"/jans-config-api/api/v1/{r}", {"get": req("readonly"), "post": req("write")}))
    paths.append((f"/jans-config-api/api/v1/{r}/{{id}}",
                   {"get": req("readonly"), "put": req("write"), "delete": req("delete")}))
for s in ("readonly", "write", "delete"):
    scopes[f"https://jans.io/oauth/config/{s}-all"] = f"every API, {s}"
out = ["openapi: 3.0.3", "info: {title: Janssen-sized config API, version: '1.0'}",
       "components:", "  securitySchemes:", "    oauth2:", "      type: oauth2", "      flows:",
       "        clientCredentials:", "          tokenUrl: https://auth.example.com/token",
       "          scopes:"]
out += [f"            '{k}': {v}" for k, v in scopes.items()]
out.append("paths:")
ops = 0
for path, methods in paths:
    out.append(f"  '{path}':")
    for m, sec in methods.items():
        ops += 1
        reqs = ", ".join("{oauth2: [" + ", ".join(f"'{s}'" for s in r["oauth2"]) + "]}" for r in sec)
        out.append(f"    {m}: {{operationId: op{ops}, security: [{reqs}], responses: {{'200': {{description: ok}}}}}}")
open(sys.argv[1], "w").write("\n".join(out) + "\n")
print(f"janssen: {ops} operations on {len(paths)} paths", file=sys.stderr)
EOF
echo '[]' > "$WORK/janssen/entities.json"
"$BIN" openapi import "$WORK/janssen.yaml" --api jans --out "$WORK/janssen/jans.cedar" \
    --entities "$WORK/janssen/entities.json"

base "$WORK/1000"
python3 - "$WORK/1000/routes.cedar" <<'EOF'
import sys
names = ["read", "write", "admin", "fido", "otp", "audit"]
out = []
for i in range(1000):
    a, b, c = names[i % 6], names[(i // 6) % 6], names[(i // 36) % 6]
    cond = [f'context.scopes.contains("{a}")',
            f'(context.scopes.contains("{b}") || context.scopes.contains("{c}"))',
            f'context.scopes.containsAll(["{a}", "{c}"])'][i % 3]
    method = ["GET", "POST", "PUT", "DELETE"][i % 4]
    out.append(f'@id("route-{i}")\npermit (principal, action == Action::"{method}", '
               f'resource == Endpoint::"/svc{i}/items/{{id}}")\nwhen {{ {cond} }};')
    if i % 10 == 0:
        out.append(f'@id("route-{i}-no-clients")\nforbid (principal is Client, action, '
                   f'resource == Endpoint::"/svc{i}/items/{{id}}")\n'
                   f'unless {{ context.scopes.contains("admin") }};')
open(sys.argv[1], "w").write("\n\n".join(out) + "\n")
EOF
echo '[]' > "$WORK/1000/entities.json"

timed() { # label, command…: prints the command's summary line and the wall time
    local label=$1; shift
    local start end
    start=$(date +%s%N)
    "$@" > "$WORK/out" 2>&1 || true
    end=$(date +%s%N)
    printf '%-28s %7d ms   %s\n' "$label" $(( (end - start) / 1000000 )) "$(tail -n 1 "$WORK/out")"
}

echo "cvc5: $CVC5"
timed "bundled analyze" "$BIN" policies analyze --human policies
timed "bundled properties+cases" "$BIN" policies test --human policies
timed "bundled compare (itself)" "$BIN" policies compare --human policies policies
timed "janssen analyze" "$BIN" policies analyze --human "$WORK/janssen"
timed "janssen compare (itself)" "$BIN" policies compare --human "$WORK/janssen" "$WORK/janssen"
timed "1000 analyze" "$BIN" policies analyze --human "$WORK/1000"
timed "1000 compare (itself)" "$BIN" policies compare --human "$WORK/1000" "$WORK/1000"
