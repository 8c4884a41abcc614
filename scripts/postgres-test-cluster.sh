#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests: 127.0.0.1:55432, data under /tmp, trust auth,
# fsync off. Works as root (runs the server as the `postgres` user) or as a normal user.
#
#   scripts/postgres-test-cluster.sh start   # (re)create and start; prints the URL
#   scripts/postgres-test-cluster.sh stop    # stop and delete the data folder
#   scripts/postgres-test-cluster.sh url     # print the URL for PATRON_TEST_POSTGRES_URL
#   scripts/postgres-test-cluster.sh status
#
# Settings: PATRON_PG_PORT (55432), PATRON_PG_ROOT (/tmp/patron-pg-test), PATRON_PG_KEEP=1
# keeps the data folder on stop.
set -euo pipefail

PORT="${PATRON_PG_PORT:-55432}"
ROOT="${PATRON_PG_ROOT:-/tmp/patron-pg-test}"
DATA="$ROOT/data"
LOG="$ROOT/server.log"
URL="postgres://postgres@127.0.0.1:$PORT/postgres"

pgbin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
    if [[ -z "$dir" ]]; then
        if command -v initdb >/dev/null 2>&1; then dir=$(dirname "$(command -v initdb)"); fi
    fi
    if [[ -z "$dir" || ! -x "$dir/initdb" ]]; then
        echo "postgres-test-cluster: PostgreSQL server binaries not found;" \
             "install them (Debian: apt-get install --no-install-recommends postgresql)" >&2
        exit 1
    fi
    echo "$dir"
}

# Runs a command as the cluster owner: `postgres` when we are root (initdb refuses root).
as_owner() {
    if [[ $EUID -eq 0 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

running() {
    [[ -f "$DATA/postmaster.pid" ]] && as_owner "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

cmd="${1:-}"
case "$cmd" in
start)
    PGBIN=$(pgbin)
    if running; then
        echo "postgres-test-cluster: already running on 127.0.0.1:$PORT" >&2
        echo "$URL"
        exit 0
    fi
    rm -rf "$ROOT"
    if [[ $EUID -eq 0 ]]; then
        install -d -o postgres -g postgres -m 700 "$ROOT"
    else
        install -d -m 700 "$ROOT"
    fi
    as_owner "$PGBIN/initdb" -D "$DATA" -U postgres -E UTF8 --locale=C.UTF-8 --auth=trust >"$ROOT/initdb.log" 2>&1 || {
        cat "$ROOT/initdb.log" >&2; exit 1; }
    if ! as_owner "$PGBIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
        -o "-p $PORT -k $ROOT -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
        start >/dev/null; then
        echo "postgres-test-cluster: the server did not start; log:" >&2
        tail -n 50 "$LOG" >&2 || true
        exit 1
    fi
    echo "postgres-test-cluster: started PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT (data $DATA)" >&2
    echo "$URL"
    ;;
stop)
    if [[ -f "$DATA/postmaster.pid" ]]; then
        PGBIN=$(pgbin)
        as_owner "$PGBIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null || true
    fi
    if [[ "${PATRON_PG_KEEP:-0}" != 1 ]]; then rm -rf "$ROOT"; fi
    ;;
url)
    echo "$URL"
    ;;
status)
    PGBIN=$(pgbin)
    if running; then echo "running on 127.0.0.1:$PORT"; else echo "not running"; exit 3; fi
    ;;
*)
    echo "usage: $0 start|stop|url|status" >&2
    exit 2
    ;;
esac
