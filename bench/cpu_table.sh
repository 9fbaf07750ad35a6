#!/usr/bin/env bash
# Issue 19's CPU table, one process per row (bench/cpu_table.py; about 10 minutes idle on the
# project's 2-core machine, --quick is a short rehearsal). Run from anywhere, on an idle machine:
#   bash bench/cpu_table.sh                 # every row -> bench/results/cpu-table-<stamp>.{json,md}
#   bash bench/cpu_table.sh --quick         # rehearsal: 16 images, 2 steps -> /tmp/fcnlib-cpu-table-quick
#   bash bench/cpu_table.sh --rows epoch-idle-new epoch-busy-new
# PYTHON defaults to the repository's .venv/bin/python, else python3.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
echo "load: $(cat /proc/loadavg); commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' (dirty)')"
exec "$PY" bench/cpu_table.py "$@"
