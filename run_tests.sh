#!/usr/bin/env bash
# Set up if needed, then run every test: the package's doctests, unit tests, static notebook checks, the real-browser
# test of the explorer, and the whole notebook series executed in the `smoke` profile through the runner (papermill end
# to end). The recorded data is found as everywhere else: $XROUTER_LITE_DATA, else ../shared/data beside the checkout
# (as CI lays it out), else data/upstream. Skipped tests are listed with their reason at the end (-rs).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# With no arguments: the package's doctests (the examples in its docstrings; `+SKIP` ones stay skipped), then
# every test. With arguments, exactly what they name (e.g. ./run_tests.sh tests/test_grading.py).
if [ "$#" -eq 0 ]; then
  set -- --doctest-modules xrouter_lite tests
fi
exec .venv/bin/python -m pytest -q -rs -p no:cacheprovider "$@"
