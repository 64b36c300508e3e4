#!/usr/bin/env bash
# A private, throwaway PostgreSQL cluster for the tests (PLATFORM.md: no
# system cluster runs here). Data, socket and log live under DIR, owned by
# the postgres user; the server listens on 127.0.0.1:PORT only.
#
#   pg-test-cluster.sh start DIR PORT   prints the test URL on stdout:
#       postgresql://safeshare_test:PASS@127.0.0.1:PORT/safeshare_test
#   pg-test-cluster.sh stop DIR         fast shutdown (DIR is then removable)
set -euo pipefail

usage() { echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 dir=$2

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    echo "pg-test-cluster: no PostgreSQL server under /usr/lib/postgresql/*/bin" \
         "(scripts/install-deps.sh --test installs it)" >&2
    exit 1
fi
# initdb and the server refuse to run as root: run them as postgres.
as_pg() {
    if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

case "$cmd" in
start)
    [ $# -eq 3 ] || usage
    port=$3
    user=safeshare_test
    db=safeshare_test
    # Random per cluster: host connections need a real password (scram).
    pass=$(openssl rand -hex 16)
    install -d -o postgres -g postgres -m 700 "$dir"
    as_pg "$bindir/initdb" -D "$dir/data" -U postgres --auth-local=trust \
        --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    # fsync off: a test cluster is thrown away, speed matters more.
    as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 \
        -o "-k $dir -p $port -c listen_addresses=127.0.0.1 -c fsync=off" start \
        >/dev/null || { cat "$dir/log" >&2; exit 1; }
    as_pg "$bindir/psql" -h "$dir" -p "$port" -U postgres -d postgres -qAt \
        -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE ROLE $user LOGIN PASSWORD '$pass';
CREATE DATABASE $db OWNER $user;
SQL
    echo "postgresql://$user:$pass@127.0.0.1:$port/$db"
    ;;
stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
    fi
    ;;
*)
    usage
    ;;
esac
