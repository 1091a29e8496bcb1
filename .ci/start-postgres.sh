#!/usr/bin/env bash
# Start a throwaway local PostgreSQL (Debian's package) on 127.0.0.1 for the storage tests and print
# its SQLAlchemy URL. Prints nothing (and exits 0) when no server can be started here.
set -u
if ! command -v pg_lsclusters >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) >&2 || exit 0
  else
    exit 0
  fi
fi
version=$(pg_lsclusters -h 2>/dev/null | awk 'NR==1{print $1}')
cluster=$(pg_lsclusters -h 2>/dev/null | awk 'NR==1{print $2}')
[ -n "$version" ] || exit 0
pg_ctlcluster "$version" "$cluster" start >/dev/null 2>&1 || true
port=$(pg_lsclusters -h | awk 'NR==1{print $3}')
for _ in $(seq 1 30); do
  su postgres -c "psql -p $port -tAc 'select 1'" >/dev/null 2>&1 && break
  sleep 0.5
done
su postgres -c "psql -p $port -v ON_ERROR_STOP=1 -q" >/dev/null 2>&1 <<SQL || exit 0
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'screening') THEN
    CREATE ROLE screening LOGIN PASSWORD 'screening-test' CREATEDB;
  END IF;
END \$\$;
SQL
su postgres -c "psql -p $port -tAc \"SELECT 1 FROM pg_database WHERE datname='screening_test'\"" | grep -q 1 \
  || su postgres -c "createdb -p $port -O screening screening_test" >/dev/null 2>&1 || exit 0
echo "postgresql+psycopg://screening:screening-test@127.0.0.1:$port/screening_test"
