"""benchmarks/device_check.sh on a machine without a GPU: a clear failure, never a hang."""

import os
import subprocess
import sys

import pytest
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(
    bool(tf.config.list_physical_devices("GPU")), reason="this machine has a GPU: the check runs"
)
def test_without_a_gpu_it_exits_2_and_says_why(tmp_path):
    environment = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHON=sys.executable)
    process = subprocess.run(
        ["bash", os.path.join(ROOT, "benchmarks", "device_check.sh"), f"--output_dir={tmp_path}"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert process.returncode == 2, process.stderr[-2000:]
    (line,) = [line for line in process.stderr.splitlines() if line.startswith("device_check:")]
    assert "FAILED: no usable GPU" in line
    assert "Traceback" not in process.stderr
    assert os.listdir(tmp_path) == []  # nothing written
