# shellcheck shell=bash
# Shared setup for scripts/test.sh and scripts/demo.sh. Source it from the
# repository root (both scripts cd there first). Requires bash with
# `set -euo pipefail` already on. Idempotent: a second run installs nothing.
#
# VENV (environment) picks the virtual environment: default .venv in the
# repository; CI's demo smoke test points it at a fresh directory.

VENV="${VENV:-.venv}"
PY="$VENV/bin/python"

section() {
    printf '\n==> %s\n' "$*" >&2
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        echo "error: need root to run: $*" >&2
        return 1
    fi
}

_apt_updated=0
apt_install() {
    # apt_install PKG...: install Debian packages non-interactively (no stdin).
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: apt-get not found; install these by hand: $*" >&2
        return 1
    fi
    if [ "$_apt_updated" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
        _apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" </dev/null
}

# ensure_test_system_packages: Chromium (driven by Playwright; never
# downloaded by it) and redis-server for the browser and redis tests.
ensure_test_system_packages() {
    local missing=()
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    if [ "${#missing[@]}" -eq 0 ]; then
        echo "chromium and redis-server present" >&2
        return 0
    fi
    # Fonts so that screenshots render text like a desktop would.
    dpkg -s fonts-liberation >/dev/null 2>&1 || missing+=(fonts-liberation)
    echo "installing: ${missing[*]}" >&2
    apt_install "${missing[@]}"
}

# ensure_venv: create $VENV with python3 -m venv if it is missing or broken.
ensure_venv() {
    if [ -x "$PY" ] && "$PY" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
        return 0
    fi
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        echo "python3 with venv support missing: installing python3-venv" >&2
        apt_install python3 python3-venv
    fi
    if ! python3 -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
        echo "error: quartdash needs Python >= 3.11; python3 is $(python3 --version 2>&1)" >&2
        return 1
    fi
    echo "creating $VENV with $(python3 --version 2>&1)" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV"
}

# stamp_fresh NAME: true when `ensure_installed SPEC NAME` completed in $VENV
# after setup.cfg and pyproject.toml last changed.
stamp_fresh() {
    local stamp="$VENV/.installed-$1-stamp"
    [ -f "$stamp" ] && [ "$stamp" -nt setup.cfg ] && [ "$stamp" -nt pyproject.toml ]
}

# ensure_installed SPEC STAMP_NAME: `pip install -e SPEC` unless its stamp is
# fresh (see stamp_fresh).
ensure_installed() {
    local spec="$1" stamp="$VENV/.installed-$2-stamp"
    if stamp_fresh "$2"; then
        echo "$spec already installed in $VENV (delete $stamp to force)" >&2
        return 0
    fi
    echo "pip install -e $spec" >&2
    local log status=0
    log="$(mktemp)"
    "$PY" -m pip install -q --disable-pip-version-check -e "$spec" </dev/null >"$log" 2>&1 \
        || status=$?
    if [ "$status" -ne 0 ]; then
        cat "$log" >&2
        rm -f "$log"
        echo "error: pip install -e $spec failed (exit $status)" >&2
        return "$status"
    fi
    # The index config names some file:// locations that do not exist; pip
    # warns about each. Show everything else it said.
    grep -v "^WARNING: Location 'file://.*' is ignored" "$log" >&2 || true
    rm -f "$log"
    touch "$stamp"
}
