#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for tests and benchmarks and prints its
# admin URL (postgres://postgres@127.0.0.1:PORT/postgres) on stdout; all other
# output goes to stderr.
#
#   url=$(scripts/pg-start.sh [DIR])    # DIR defaults to a new /tmp/sluis-pg.XXXXXX
#   ...
#   scripts/pg-stop.sh DIR              # stops the server and removes DIR
#
# The server listens on 127.0.0.1 only, on a free port, with trust auth, its
# unix socket inside DIR, and durability switched off (fsync etc.): data is
# disposable. As root, the server runs as the `postgres` user (postgres
# refuses to run as root).
#
# Environment: PG_BIN overrides the directory of initdb/pg_ctl;
# PG_MAX_CONNECTIONS (default 300) for suites that open many pools.
set -euo pipefail

log() { printf '[pg-start] %s\n' "$*" >&2; }

find_pg_bin() {
    if [ -n "${PG_BIN:-}" ]; then
        printf '%s\n' "$PG_BIN"
        return
    fi
    # Debian: /usr/lib/postgresql/<major>/bin; pick the newest major.
    local dir
    dir="$(printf "%s\n" /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
    if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then
        printf '%s\n' "$dir"
        return
    fi
    if command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return
    fi
    log "no PostgreSQL server binaries found (apt-get install postgresql, or set PG_BIN)"
    return 1
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

PG_BIN="$(find_pg_bin)"
DIR="${1:-}"
if [ -z "$DIR" ]; then
    DIR="$(mktemp -d /tmp/sluis-pg.XXXXXX)"
    log "data in $DIR (stop with: scripts/pg-stop.sh $DIR)"
fi
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
if [ -e "$DIR/data" ]; then
    log "$DIR/data already exists; stop that server first (scripts/pg-stop.sh $DIR)"
    exit 1
fi

# Run as the postgres user when we are root; the commands run from inside DIR
# so the postgres user never needs access to the caller's working directory.
if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$DIR"
    as_pg() { (cd "$DIR" && runuser -u postgres -- "$@"); }
else
    as_pg() { (cd "$DIR" && "$@"); }
fi

as_pg "$PG_BIN/initdb" -D "$DIR/data" -U postgres --auth=trust --encoding=UTF8 --no-locale \
    >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; exit 1; }
as_pg mkdir -p "$DIR/socket"

# The port is chosen before the server binds it, so another process may take
# it in between: retry a few times with a fresh port.
for attempt in 1 2 3 4 5; do
    PORT="$(free_port)"
    cat >"$DIR/data/postgresql.auto.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DIR/socket'
max_connections = ${PG_MAX_CONNECTIONS:-300}
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
CONF
    chown --reference="$DIR/data" "$DIR/data/postgresql.auto.conf"
    if as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 start >/dev/null; then
        break
    fi
    log "start attempt $attempt on port $PORT failed:"
    tail -n 5 "$DIR/server.log" >&2 || true
    if [ "$attempt" -eq 5 ]; then
        exit 1
    fi
done

if ! "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -t 30; then
    log "server on port $PORT is not accepting connections"
    tail -n 20 "$DIR/server.log" >&2 || true
    exit 1
fi
printf '%s\n' "$PORT" >"$DIR/port"
log "$("$PG_BIN/postgres" --version | sed "s/^postgres (PostgreSQL) /PostgreSQL /") on 127.0.0.1:$PORT"
printf 'postgres://postgres@127.0.0.1:%s/postgres\n' "$PORT"
