"""Two worker processes on 127.0.0.1 (MultiWorkerMirroredStrategy) train like one process.

tests/scripts/multi_worker.py runs on each worker with its `TF_CONFIG`, and alone as the
reference; both workers must end with the same weights as each other and as the reference
on the same global batches (negatives gathered across the workers, BatchNorm synchronised).
"""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import in_replica_process

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "multi_worker.py")
TIMEOUT_SECONDS = 420
WEIGHTS_TOLERANCE = 1e-4  # per variable, ||w - w_ref|| / ||w_ref||, after 3 momentum steps


def free_ports(count: int) -> list[int]:
    """Ports that are free on 127.0.0.1 right now (kept open together so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def environment(tf_config: dict | None) -> dict:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", KERAS_BACKEND="tensorflow")
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def load(output: str):
    with np.load(output) as arrays:
        weights = [arrays[f"arr_{index}"] for index in range(len(arrays.files))]
    with open(output + ".json") as file:
        return weights, json.load(file)


def relative_difference(value, expected) -> float:
    scale = float(np.linalg.norm(expected))
    return float(np.linalg.norm(value - expected)) / max(scale, 1e-12)


@pytest.mark.slow
@in_replica_process
def test_two_workers_end_with_the_weights_of_one_process(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    outputs = [str(tmp_path / f"worker{index}.npz") for index in range(2)]
    reference_output = str(tmp_path / "single.npz")
    processes = []
    started = time.perf_counter()
    try:
        for index in range(2):
            tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            processes.append(
                subprocess.Popen(
                    [sys.executable, SCRIPT, "multi_worker", outputs[index]],
                    env=environment(tf_config),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        processes.append(
            subprocess.Popen(
                [sys.executable, SCRIPT, "default", reference_output],
                env=environment(None),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
        logs = []
        for process in processes:
            remaining = TIMEOUT_SECONDS - (time.perf_counter() - started)
            log, _ = process.communicate(timeout=max(remaining, 1))
            logs.append(log)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    seconds = time.perf_counter() - started
    print(f"multi-worker test wall time: {seconds:.1f} s")
    for process, log in zip(processes, logs, strict=True):
        assert process.returncode == 0, log[-5000:]

    reference, reference_info = load(reference_output)
    assert reference_info["replicas"] == 1
    first, second = (load(output) for output in outputs)
    for weights, info in (first, second):
        assert info["strategy"] == "MultiWorkerMirroredStrategy"
        assert info["replicas"] == 2 and info["workers"] == 2
        assert info["per_replica_batch_size"] == reference_info["per_replica_batch_size"] // 2
        np.testing.assert_allclose(info["loss"], reference_info["loss"], rtol=1e-5)
        differences = [
            relative_difference(value, expected)
            for value, expected in zip(weights, reference, strict=True)
        ]
        print(f"largest per-variable relative difference to one process: {max(differences):.2e}")
        assert max(differences) < WEIGHTS_TOLERANCE
    for value, other in zip(first[0], second[0], strict=True):
        np.testing.assert_array_equal(value, other)
    assert [first[1]["chief"], second[1]["chief"]] == [True, False]
    assert first[1]["worker_directory"] != second[1]["worker_directory"]
