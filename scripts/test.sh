#!/usr/bin/env bash
# The project's test command: ./scripts/test.sh [extra cargo test args]
#
#   1. installs test dependencies (scripts/install-test-deps.sh; quick when
#      everything is already there);
#   2. starts a throwaway PostgreSQL server on 127.0.0.1 (scripts/pg-start.sh)
#      unless TEST_POSTGRES_URL is already set; it is stopped and its data
#      removed on exit;
#   3. builds tests and binaries once;
#   4. runs the whole suite against SQLite (TEST_POSTGRES_URL unset);
#   5. runs it again against PostgreSQL (TEST_POSTGRES_URL = the admin URL;
#      each test creates its own database from it).
#
# Extra arguments go to both `cargo test` runs, e.g.
#   ./scripts/test.sh -- --nocapture          ./scripts/test.sh oidc_flow
# Any failure exits non-zero. Non-interactive (fine with CI=true, no stdin).
set -euo pipefail
cd "$(dirname "$0")/.."

phase() { printf '\n==== %s ====\n' "$*"; }

PG_DIR=""
cleanup() {
    if [ -n "$PG_DIR" ]; then
        phase "Stopping PostgreSQL"
        ./scripts/pg-stop.sh "$PG_DIR" || true
    fi
}
trap cleanup EXIT
# On Ctrl-C / kill, exit so the EXIT trap stops the server.
trap 'exit 130' INT
trap 'exit 143' TERM

phase "Installing test dependencies"
./scripts/install-test-deps.sh </dev/null

if [ -n "${TEST_POSTGRES_URL:-}" ]; then
    PG_URL="$TEST_POSTGRES_URL"
    phase "Using PostgreSQL from TEST_POSTGRES_URL"
else
    phase "Starting throwaway PostgreSQL"
    PG_DIR="$(mktemp -d /tmp/sluis-test-pg.XXXXXX)"
    PG_URL="$(./scripts/pg-start.sh "$PG_DIR")"
    echo "TEST_POSTGRES_URL=$PG_URL"
fi
# Only the PostgreSQL phase sees the URL.
unset TEST_POSTGRES_URL

phase "Building (cargo build --tests --bins)"
cargo build --tests --bins

phase "cargo test with SQLite"
cargo test "$@"

phase "cargo test with PostgreSQL"
TEST_POSTGRES_URL="$PG_URL" cargo test "$@"

phase "All test phases passed"
