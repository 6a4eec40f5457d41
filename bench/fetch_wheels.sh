#!/usr/bin/env bash
# Download the wheels of bench/wheels.txt into bench/wheels/ (git-ignored) for a GPU machine without
# network, where bench/gpu_check.sh installs them:
#
#   bash bench/fetch_wheels.sh [PYTHON_VERSION]     # default 3.12 (the GPU image's python3)
#
# Binary wheels are fetched for manylinux x86-64 and that Python; antlr4-python3-runtime 4.9.3 (which
# hydra-core 1.3 pins) is published only as a source archive, so it is built into a pure-Python wheel.
set -euo pipefail
cd "$(dirname "$0")"
py="${1:-3.12}"
python="${PYTHON:-python3}"
mkdir -p wheels
grep -v -e '^#' -e '^$' -e '^antlr4' wheels.txt >wheels/.requirements
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d wheels -r wheels/.requirements
"$python" -m pip wheel -q --no-deps -w wheels "$(grep '^antlr4' wheels.txt)"
rm wheels/.requirements
ls -la wheels
du -sh wheels
