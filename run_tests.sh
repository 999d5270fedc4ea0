#!/usr/bin/env bash
# Set up if needed, then run every test: unit tests, static notebook checks, the real-browser test of the explorer,
# and the whole notebook series executed in the `smoke` profile through the runner (papermill end to end).
# The recorded data is found as everywhere else: $XROUTER_LITE_DATA, else ../shared/data beside the checkout
# (as CI lays it out), else data/upstream. Skipped tests are listed with their reason at the end (-rs).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/python -m pytest -q -rs -p no:cacheprovider "$@"
