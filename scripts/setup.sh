#!/usr/bin/env bash
# Create .venv and install the pinned environment, only if it is missing or requirements changed.
# torch goes first and alone: an unpinned resolve could pull a multi-GB CUDA build (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_VERSION=2.13.0
stamp=.venv/.xrouter_lite-installed
want="$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1) torch==$TORCH_VERSION"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "[setup] creating .venv and installing pinned requirements (first run: a few minutes)"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==$TORCH_VERSION"
.venv/bin/python -m pip install -q -r requirements.txt
.venv/bin/python -m pip install -q --no-deps -e .
# requirements.txt must never move torch: fail loudly if something replaced it
got=$(.venv/bin/python -c "import torch; print(torch.__version__.split('+')[0])")
if [ "$got" != "$TORCH_VERSION" ]; then
  echo "[setup] torch is $got after installing requirements.txt, expected $TORCH_VERSION" >&2
  exit 1
fi
echo "$want" > "$stamp"
echo "[setup] done: $(.venv/bin/python -c 'import torch, transformers, trl; print("torch", torch.__version__, "transformers", transformers.__version__, "trl", trl.__version__)')"
