#!/usr/bin/env bash
# Set up if needed, then run every test: unit tests, static notebook checks, and the whole notebook
# series executed in the `smoke` profile through the runner (papermill end to end).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
# The recorded data: $XROUTER_LITE_DATA, else ../shared/data beside the repo (as CI lays it out).
export XROUTER_LITE_DATA="${XROUTER_LITE_DATA:-$(cd .. && pwd)/shared/data}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
