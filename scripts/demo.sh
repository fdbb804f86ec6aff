#!/usr/bin/env bash
# The demo command: bash scripts/demo.sh [--port N] [--host H] [--debug]
#
# Installs quartdash with its `examples` extra into .venv (once; VENV=dir
# picks another virtual environment) and serves the example gallery with
# hypercorn; it prints the URL to open. Arguments go to the gallery
# (python -m examples.gallery --help). Needs no root unless python3's venv
# module is missing (then it apt-installs python3-venv). Ctrl-C or SIGTERM
# stops it: open sessions are closed with 1001 and it exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/_setup.sh
source scripts/_setup.sh

section "python environment ($VENV)"
ensure_venv
if stamp_fresh test; then
    # The test extra lists every package of the examples extra (checked by
    # tests/test_packaging.py), so a test install serves the gallery too.
    echo "quartdash already installed in $VENV (with the test extra, which covers the examples)" >&2
else
    ensure_installed ".[examples]" examples
fi

section "example gallery"
# exec: the server is this process, so Ctrl-C / SIGTERM reach it directly.
exec "$PY" -m examples.gallery "$@"
