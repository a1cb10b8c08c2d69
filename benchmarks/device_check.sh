#!/usr/bin/env bash
# The GPU path in one command, at most 8 minutes: matmul peaks, images/s of the ResNet-18
# SimCLR step (float32 and mixed precision, XLA off and on) with its fraction of the peak,
# then a few hundred SimCLR steps on Fashion-MNIST at 32x32 with the kNN monitor.
# Without a usable GPU it exits with status 2 and says why, after the TensorFlow import
# (a few seconds). See benchmarks/device_check.py; results in benchmarks/results/.
#
# Run: bash benchmarks/device_check.sh   (PYTHON=... to use another interpreter)
set -u
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
# timeout: the Python side stops itself at 7.5 minutes; a driver that hangs is killed at 8.
timeout --kill-after=10 480 "$PYTHON" benchmarks/device_check.py "$@"
status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "device_check: FAILED: did not finish within 8 minutes (killed)" >&2
fi
exit "$status"
