#!/usr/bin/env bash
# Load benchmark: builds Sluis in release mode, starts it on SQLite on 127.0.0.1, and
# runs wrk against discovery, JWKS, the client_credentials token endpoint (RS256 and
# ES256 clients) and userinfo, each for a fixed time at fixed concurrency.
#
#   bench/load.sh [DURATION_SECONDS=10] [CONNECTIONS=32]
#
# Prints one table: requests/s, p50, p99 per endpoint, plus the server's RSS.
# Needs wrk (Debian package `wrk`; installed here if missing) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
CONNECTIONS="${2:-32}"

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet
BIN="$PWD/target/release/sluis"

WORK="$(mktemp -d /tmp/sluis-bench.XXXXXX)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export SLUIS_LISTEN="127.0.0.1:$PORT" SLUIS_ISSUER="http://127.0.0.1:$PORT" SLUIS_DATA_DIR="$WORK/data"
# The load comes from one address: per-IP rate limits would measure the limiter, not Sluis.
export SLUIS_RATE_LIMIT_TOKEN_PER_SECOND=0 SLUIS_RATE_LIMIT_API_PER_SECOND=0 SLUIS_RATE_LIMIT_LOGIN_PER_MINUTE=0
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

cd "$WORK"
echo 'bench password 123' | "$BIN" user create --email bench@example.com --password-stdin >/dev/null
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
RS="$("$BIN" client create --name bench-rs --redirect-uri http://127.0.0.1:9/cb --grant-type authorization_code --grant-type client_credentials)"
ES="$("$BIN" client create --name bench-es --signing-alg ES256 --redirect-uri http://127.0.0.1:9/cb --grant-type client_credentials)"
RS_ID="$(echo "$RS" | field client_id)"; RS_SECRET="$(echo "$RS" | field client_secret)"
ES_ID="$(echo "$ES" | field client_id)"; ES_SECRET="$(echo "$ES" | field client_secret)"

RUST_LOG=warn "$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do curl -fsS "$SLUIS_ISSUER/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
rss() { awk '/VmRSS/ {printf "%.1f MB", $2/1024}' "/proc/$SERVER_PID/status"; }
IDLE_RSS="$(rss)"

TOKEN="$(python3 "$OLDPWD/bench/user_token.py" "$SLUIS_ISSUER" "$RS_ID" "$RS_SECRET" http://127.0.0.1:9/cb bench@example.com 'bench password 123')"
b64() { printf '%s' "$1" | base64 -w0; }

run() { # name, then wrk arguments
    local name="$1"; shift
    local out
    out="$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@")"
    local rps p50 p99 errors
    rps="$(echo "$out" | awk '/Requests\/sec/ {print $2}')"
    p50="$(echo "$out" | awk '$1=="50%" {print $2}')"
    p99="$(echo "$out" | awk '$1=="99%" {print $2}')"
    errors="$(echo "$out" | awk '/Non-2xx/ {print $4}')"
    printf '| %-30s | %10s | %8s | %8s | %6s |\n' "$name" "$rps" "$p50" "$p99" "${errors:-0}"
}

echo
echo "Sluis $(git -C "$OLDPWD" rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores, ${DURATION}s per endpoint, $CONNECTIONS connections"
echo
printf '| %-30s | %10s | %8s | %8s | %6s |\n' endpoint "req/s" p50 p99 non-2xx
printf '|%s|%s|%s|%s|%s|\n' "--------------------------------" "------------" "----------" "----------" "--------"
run "discovery" "$SLUIS_ISSUER/.well-known/openid-configuration"
run "jwks" "$SLUIS_ISSUER/jwks"
BODY="grant_type=client_credentials" AUTH="$(b64 "$RS_ID:$RS_SECRET")" run "token client_credentials RS256" -s "$OLDPWD/bench/wrk/post_form.lua" "$SLUIS_ISSUER/token"
BODY="grant_type=client_credentials" AUTH="$(b64 "$ES_ID:$ES_SECRET")" run "token client_credentials ES256" -s "$OLDPWD/bench/wrk/post_form.lua" "$SLUIS_ISSUER/token"
TOKEN="$TOKEN" run "userinfo" -s "$OLDPWD/bench/wrk/bearer.lua" "$SLUIS_ISSUER/userinfo"
echo
echo "RSS idle: $IDLE_RSS; after load: $(rss)"
