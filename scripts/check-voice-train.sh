#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
# Before `make test-voice` installs the voice-train extra: is the PyTorch the lock names at hand?
#   check-voice-train.sh PYTHON
# On x86-64 with Python 3.11 the lock names PyTorch's CPU build by its path on the development
# and CI machines (PyPI has no x86-64 CPU build); elsewhere it comes from PyPI: a CPU build on
# aarch64, a CUDA build of several GB on x86-64 with Python 3.12 and 3.13.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
python=${1:?usage: check-voice-train.sh PYTHON}
machine=$("$python" -c 'import platform; print(platform.machine())')
tag=$("$python" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')

wheel=$(sed -n "s/.*path = \"\([^\"]*torch-[^\"]*-${tag}-[^\"]*_${machine}\.whl\)\".*/\1/p" "$here/uv.lock" | head -n 1)
if [ -n "$wheel" ]; then
    if [ ! -f "$wheel" ]; then
        echo "error: the voice-train extra needs PyTorch's CPU build at $wheel (the lock names that file," \
            "PyPI has no such build): put the wheel there, or leave the voice tests out (make test skips them)" >&2
        exit 1
    fi
    echo "PyTorch: the CPU build, $wheel"
elif [ "$machine" = x86_64 ]; then
    echo "PyTorch: the lock takes PyPI's CUDA build for Python $tag on x86-64 (several GB to download)"
else
    echo "PyTorch: PyPI's CPU build for $machine"
fi
