#!/usr/bin/env bash
# The demo command: bash scripts/demo.sh [gallery args...]
#
# Installs quartdash into .venv (once) and serves the example gallery with
# hypercorn; it prints the URL to open.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/_setup.sh
source scripts/_setup.sh

section "python environment ($VENV)"
ensure_venv
if [ -f "$VENV/.installed-test-stamp" ] && [ "$VENV/.installed-test-stamp" -nt setup.cfg ] \
    && [ "$VENV/.installed-test-stamp" -nt pyproject.toml ]; then
    echo "quartdash already installed in $VENV (with the test extra)" >&2
else
    ensure_installed "." base
fi

section "example gallery"
exec "$PY" -m examples.gallery "$@"
