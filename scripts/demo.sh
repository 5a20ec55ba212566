#!/usr/bin/env bash
# The one-command demo: a virtualenv with the project and its demo extra (made once), then
# `case-gateway demo`. Extra arguments go to the demo, e.g. scripts/demo.sh --folder /tmp/demo
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv || { echo "python3 -m venv failed: on Debian, apt-get install python3-venv" >&2; exit 1; }
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[demo]'
exec .venv/bin/case-gateway demo "$@"
