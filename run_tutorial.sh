#!/usr/bin/env bash
# Set up if needed, then run the whole tutorial series. Usage: ./run_tutorial.sh [smoke|cpu|gpu] [runner options]
# (default: cpu); runner options go to `python -m xrouter_lite notebooks`, e.g. --set PER_LAMBDA=1.
# The recorded data: $XROUTER_LITE_DATA, else ../shared/data beside the checkout, else data/upstream, else it is
# downloaded into data/upstream (no network: a 2-line message and exit 2). Results: runs/<profile>-<timestamp>/,
# and runs/latest points at them, which is where notebooks opened in JupyterLab read and write.
set -euo pipefail
cd "$(dirname "$0")"
PROFILE="${1:-cpu}"
shift || true
bash scripts/setup.sh
export TOKENIZERS_PARALLELISM=false
exec .venv/bin/python -m xrouter_lite notebooks --profile "$PROFILE" "$@"
