#!/usr/bin/env bash
# Installs PostgreSQL from Debian's packages (if missing), starts it on loopback and creates
# the role and database the store tests use. Prints the URL to export as
# ARBITER_TEST_POSTGRES_URL. Needs root; safe to run again.
set -euo pipefail

if ! command -v pg_lsclusters >/dev/null || [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q postgresql >&2 || { apt-get update -q >&2 && apt-get install -y -q postgresql >&2; }
fi

version="$(ls /usr/lib/postgresql | sort -n | tail -1)"
if ! pg_lsclusters -h | awk '{print $1, $2}' | grep -qx "$version main"; then
    pg_createcluster "$version" main >&2
fi
pg_ctlcluster "$version" main start >&2 2>/dev/null || true
for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 1
done
pg_isready -h 127.0.0.1 -p 5432 >&2

runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 <<'SQL' >&2
SELECT 'CREATE ROLE arbiter LOGIN PASSWORD ''arbiter'' CREATEDB'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'arbiter')\gexec
SELECT 'CREATE DATABASE arbiter_test OWNER arbiter'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'arbiter_test')\gexec
SQL

echo "postgres://arbiter:arbiter@127.0.0.1:5432/arbiter_test"
