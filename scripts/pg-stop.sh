#!/usr/bin/env bash
# Stops a server started by scripts/pg-start.sh DIR and removes DIR.
# Safe to call when the server is already gone or never fully started.
set -uo pipefail

DIR="${1:?usage: scripts/pg-stop.sh DIR}"
[ -d "$DIR" ] || exit 0

PG_BIN="${PG_BIN:-$(printf "%s\n" /usr/lib/postgresql/*/bin | sort -V | tail -n 1)}"
[ -x "$PG_BIN/pg_ctl" ] || PG_BIN="$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/pg_ctl)")"

if [ -f "$DIR/data/postmaster.pid" ]; then
    if [ "$(id -u)" -eq 0 ]; then
        stop() { (cd "$DIR" && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$DIR/data" -w -t 20 -m "$1" stop) >/dev/null 2>&1; }
    else
        stop() { (cd "$DIR" && "$PG_BIN/pg_ctl" -D "$DIR/data" -w -t 20 -m "$1" stop) >/dev/null 2>&1; }
    fi
    # "fast" disconnects clients and shuts down cleanly; "immediate" is the
    # fallback; killing the postmaster by its pid is the last resort.
    if ! stop fast && ! stop immediate; then
        pid="$(head -n 1 "$DIR/data/postmaster.pid" 2>/dev/null || true)"
        if [ -n "$pid" ]; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
fi
rm -rf "$DIR"
