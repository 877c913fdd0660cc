#!/usr/bin/env bash
# Installs everything the test suite needs beyond the Rust toolchain:
#   - Debian packages: chromium + chromium-driver (browser tests),
#     postgresql (throwaway server for the PostgreSQL test run);
#   - the Node relying party's npm packages (tests/rp/node);
#   - the upstream OpenID provider's npm packages (tests/upstream/node, oidc-provider);
#   - the Python relying party's virtualenv (tests/rp/python/.venv).
#
# Idempotent and quick when everything is already in place: apt is only
# touched when a package is missing, npm/pip only when their lock/requirements
# file changed since the last install (tracked with hash stamp files).
# Non-interactive: safe with CI=true and no stdin.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
NODE_DIRS=("$ROOT/tests/rp/node" "$ROOT/tests/upstream/node")
PY_DIR="$ROOT/tests/rp/python"
VENV="$PY_DIR/.venv"

APT_PACKAGES=(chromium chromium-driver postgresql)

log() { printf '[install-test-deps] %s\n' "$*" >&2; }

# Run a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        log "need root to run: $*"
        return 1
    fi
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}

install_apt_packages() {
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        is_installed "$pkg" || missing+=("$pkg")
    done
    # The RP scripts need node/npm and a python able to make virtualenvs;
    # both ship on the machine image, but fall back to Debian's if absent.
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    if ! command -v python3 >/dev/null 2>&1; then
        missing+=(python3 python3-venv)
    elif ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        missing+=(python3-venv)
    fi
    if [ "${#missing[@]}" -eq 0 ]; then
        log "apt packages: all present"
        return
    fi
    log "apt packages: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Wait for a concurrent apt/dpkg run instead of failing on its lock.
    local apt_opts=(-o DPkg::Lock::Timeout=600 -o Dpkg::Use-Pty=0)
    as_root apt-get "${apt_opts[@]}" update -qq </dev/null
    as_root apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}" </dev/null
}

install_node_packages() {
    local NODE_DIR="$1"
    local lock="$NODE_DIR/package-lock.json"
    local stamp="$NODE_DIR/node_modules/.sluis-install-stamp"
    local want
    if [ -f "$lock" ]; then
        want="$(sha256_of "$lock")"
    else
        want="$(sha256_of "$NODE_DIR/package.json")"
    fi
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        log "npm packages: up to date"
        return
    fi
    log "npm packages: installing in ${NODE_DIR#"$ROOT"/}"
    local npm_opts=(--no-audit --no-fund --loglevel=error)
    if [ -f "$lock" ]; then
        (cd "$NODE_DIR" && npm ci "${npm_opts[@]}" </dev/null)
    else
        (cd "$NODE_DIR" && npm install "${npm_opts[@]}" </dev/null)
        want="$(sha256_of "$lock")"
    fi
    printf '%s\n' "$want" >"$stamp"
}

install_python_packages() {
    local req="$PY_DIR/requirements.txt"
    local stamp="$VENV/.sluis-requirements.sha256"
    local want
    want="$(sha256_of "$req")"
    # A venv whose interpreter no longer runs (python moved/upgraded) is rebuilt.
    if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c '' >/dev/null 2>&1; then
        log "python venv: broken interpreter, recreating"
        rm -rf "$VENV"
    fi
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        log "python venv: up to date"
        return
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        log "python venv: creating tests/rp/python/.venv"
        python3 -m venv "$VENV"
    fi
    log "python venv: installing requirements.txt"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install -q -r "$req" </dev/null
    printf '%s\n' "$want" >"$stamp"
}

install_apt_packages
for dir in "${NODE_DIRS[@]}"; do
    install_node_packages "$dir"
done
install_python_packages
log "done"
