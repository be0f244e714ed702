# Sourced by scripts/demo and scripts/test: a project-local virtualenv with the hub installed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "spotme-hub needs Python 3.11 or newer (found: $("$PY" --version 2>&1))" >&2
  exit 1
fi
VENV="${SPOTME_VENV:-$ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
EXTRAS="${1:-}"
STAMP="$VENV/.installed${EXTRAS}"
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ]; then
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT$EXTRAS"
  touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
