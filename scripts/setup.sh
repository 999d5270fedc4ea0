#!/usr/bin/env bash
# Create .venv and install the pinned environment, only if it is missing or requirements changed; install
# Debian's chromium + chromium-driver when missing (as root with apt-get), for the real-browser test and the PNG
# copies of figures. torch goes first and alone: an unpinned resolve could pull a multi-GB CUDA build (see README).
# XROUTER_LITE_NO_APT=1 skips the apt step.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_VERSION=2.13.0

# Chromium: checked on every run (cheap), since CI starts from a bare machine while .venv may be cached.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if [ "${XROUTER_LITE_NO_APT:-0}" = 1 ]; then
    echo "[setup] XROUTER_LITE_NO_APT=1: chromium not installed; the browser test will be SKIPPED" >&2
  elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing Debian's chromium and chromium-driver (browser test, PNG figures; ~40 s)"
    t0=$(date +%s)
    if apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends chromium chromium-driver >/dev/null; then
      echo "[setup] chromium installed in $(( $(date +%s) - t0 )) s: $(chromium --version 2>/dev/null | head -1)"
    else
      echo "[setup] WARNING: apt-get could not install chromium chromium-driver: the browser test will be" \
           "SKIPPED and executed notebooks get no PNG figures" >&2
    fi
  else
    echo "[setup] WARNING: no chromium/chromedriver, and no root apt-get to install them: the browser test will" \
         "be SKIPPED (Debian: sudo apt-get install chromium chromium-driver)" >&2
  fi
fi

stamp=.venv/.xrouter_lite-installed
want="$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1) torch==$TORCH_VERSION"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "[setup] creating .venv and installing pinned requirements (first run: a few minutes)"
t0=$(date +%s)
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
echo "[setup] done in $(( $(date +%s) - t0 )) s: $(.venv/bin/python -c 'import torch, transformers, trl; print("torch", torch.__version__, "transformers", transformers.__version__, "trl", trl.__version__)')"
