#!/usr/bin/env bash
# The benchmark's own environment for vigipy (never a dependency of dmtwatch): a separate
# virtual environment with vigipy and pyarrow (for pandas.read_parquet), created on first
# use. Prints the environment's python. benchmarks/signals.py calls this.
#   VIGIPY_VENV=build/bench/venv-vigipy  PYTHON=python3  VIGIPY_VERSION=3.5.1
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VIGIPY_VENV:-build/bench/venv-vigipy}"
VERSION="${VIGIPY_VERSION:-3.5.1}"
if ! "$VENV/bin/python" -c "import vigipy, pyarrow; assert vigipy.__version__ == '$VERSION'" 2>/dev/null; then
  "${PYTHON:-python3}" -m venv "$VENV" >&2
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  "$VENV/bin/python" -m pip install -q "vigipy==$VERSION" pyarrow >&2
fi
echo "$VENV/bin/python"
