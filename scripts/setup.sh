#!/usr/bin/env bash
# One-time set-up of a cnnlab checkout: a virtual environment in .venv with PyTorch 2.13.0 (CPU),
# then cnnlab itself with every extra (web server, ONNX export, Keras files, tests) and its compiled CPU kernels
# (a C++ compiler is needed for those; without one cnnlab still works, more slowly). When run as root on
# Debian it also installs Chromium (for the browser test) and Fashion-MNIST.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "setup: cnnlab needs Python 3.11 or newer; set PYTHON=python3.11 (or newer)" >&2; exit 1; }

[ -x .venv/bin/python ] || "$python" -m venv .venv
# torch first and pinned: an unpinned torch pulls several GB of CUDA packages.
.venv/bin/pip install --quiet --disable-pip-version-check torch==2.13.0 'setuptools>=77'
# --no-build-isolation: the compiled kernels (setup.py, about a minute) build against the torch just installed
.venv/bin/pip install --quiet --disable-pip-version-check --no-build-isolation -e '.[web,onnx,keras,dev]'
.venv/bin/python -c 'from cnnlab.engine import kernels; print("setup: compiled kernels", kernels.status())'

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver dataset-fashion-mnist >/dev/null
elif ! command -v chromium >/dev/null; then
  echo "setup: for the browser test and Fashion-MNIST, run as root: apt-get install chromium chromium-driver dataset-fashion-mnist"
fi
echo "setup: done. Try: .venv/bin/cnnlab train"
