#!/usr/bin/env bash
# Set up if needed, fetch the recorded data if needed, then run the whole tutorial series.
# Usage: ./run_tutorial.sh [smoke|cpu|gpu]   (default: cpu). Results: runs/<profile>-<timestamp>/
set -euo pipefail
cd "$(dirname "$0")"
PROFILE="${1:-cpu}"
bash scripts/setup.sh
export XROUTER_LITE_DATA="${XROUTER_LITE_DATA:-data/upstream}"
if [ ! -d "$XROUTER_LITE_DATA/zeroeval" ]; then
  .venv/bin/python -m xrouter_lite download --data "$XROUTER_LITE_DATA"
fi
export TOKENIZERS_PARALLELISM=false
exec .venv/bin/python -m xrouter_lite notebooks --profile "$PROFILE" --data "$XROUTER_LITE_DATA"
