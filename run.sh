#!/usr/bin/env bash
# One entry point for a fresh machine.
#   ./run.sh         set up .venv (CPU torch), build or update the index of seeds/ and data/articles/, serve the page
#   ./run.sh test    set up .venv with the test tools (and Chromium for the browser tests), run the whole test suite
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PY=$cand; break
    fi
  done
fi
[ -n "$PY" ] || { echo "error: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 2; }

mode=${1:-serve}
extras=""
[ "$mode" = test ] && extras="[test,milvus]"

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=".venv/.installed-$(cat pyproject.toml run.sh | sha256sum | cut -c1-16)-${mode}"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade "pip>=24"
  # torch first and exactly pinned: on these machines 2.13.0 is a local CPU wheel;
  # letting a dependency pull an unpinned torch would fetch a multi-GB CUDA build.
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -e ".${extras}"
  touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"

case "$mode" in
  serve)
    indexer build
    # ADDRESS=0.0.0.0 ./run.sh serves other machines too; by default only this one
    exec streamlit run app.py --server.headless true --server.address "${ADDRESS:-127.0.0.1}" \
      --server.port "${PORT:-8501}" --browser.gatherUsageStats false
    ;;
  test)
    if ! command -v chromium >/dev/null 2>&1; then
      if command -v apt-get >/dev/null 2>&1; then
        (apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
          || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null; }) \
          || echo "warning: could not install chromium; browser tests will be skipped" >&2
      fi
    fi
    ruff check indexer tests app.py bench
    mypy
    exec python -m pytest "${@:2}"
    ;;
  *)
    echo "usage: ./run.sh [serve|test]" >&2; exit 2 ;;
esac
