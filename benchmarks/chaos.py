"""Chaos benchmark: a small `train` run killed at random moments, resumed each time.

Issue 22. One CLI run (SimCLR, resnet width 4 at 16x16, Fashion-MNIST subset, a few hundred
steps) is killed with SIGKILL at `--kills` random moments (a third of them the moment a
temporary file appears in the run directory, i.e. inside a checkpoint/model/CSV write) and
resumed each time; then another run gets `--sigterms` SIGTERMs. Reported:

- resumes that worked after a kill / runs that finished with a loadable model;
- files found damaged after a kill (every JSON, CSV, .keras and checkpoint is checked);
- steps lost per kill (steps trained, read from the progress bar, minus the step resumed at;
  at most `--checkpoint_every_steps` expected; 0 for SIGTERM);
- the final weights' max difference from an uninterrupted run;
- checkpoint overhead: the measured cost of one checkpoint against the training time, at the
  default interval (10 minutes) and at the interval used here.

Usage: python benchmarks/chaos.py [--kills=20] [--sigterms=10] [--out=benchmarks/results/chaos.md]
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

INTERVAL = 20  # --checkpoint_every_steps of the kill phase
FLAGS = [
    "--method=simclr",
    "--train_examples=1024",
    "--batch_size=32",
    "--epochs=16",
    "--encoder_width=4",
    "--image_size=16",
    "--projection_dims=32,16",
    "--noknn_monitor",
    "--strategy=default",
    "--precision=float32",
    "--verbose=1",
    "--noplots",
]
TOTAL = 1024 // 32 * 16


def start(model_dir: str, *extra: str) -> subprocess.Popen:
    """Starts `train` on a pseudo-terminal, so Keras' progress bar reports every step."""
    command = [sys.executable, "-m", "keras_siamese", "train", f"--model_dir={model_dir}"]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    main, child = pty.openpty()
    process = subprocess.Popen(
        [*command, *FLAGS, *extra], env=env, stdout=child, stderr=child, stdin=subprocess.DEVNULL
    )
    os.close(child)
    process.terminal = main
    return process


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PROGRESS = re.compile(r"(\d+)/(\d+) ")


def plain(output) -> str:
    """The terminal output without colours, one progress update per line."""
    return ANSI.sub("", "".join(output)).replace("\r", "\n")


def steps_seen(output: str) -> int:
    """Steps trained in one process, from its progress bars (one per `Epoch e/E`)."""
    output = plain(output)
    # A run stopped mid-epoch ends its progress bar at the epoch's target (Keras' finalize):
    # count only what was printed before the checkpoint line.
    output = output.split("SIGTERM: checkpointed")[0]
    total = 0
    for segment in output.split("Epoch ")[1:]:
        counts = PROGRESS.findall(segment)
        if counts:
            total += int(counts[-1][0])
    return total


def newest_step(model_dir: str) -> int:
    from keras_siamese import checkpointing

    checkpoint = checkpointing.StepCheckpoint(os.path.join(model_dir, "checkpoints"))
    latest = checkpoint.latest()
    return latest["step"] if latest else 0


def damaged_files(model_dir: str) -> list[str]:
    """Every file of the run directory that is not whole (temporary files excepted)."""
    import csv

    from keras_siamese import atomic_files
    from keras_siamese.cli import run_dir

    damaged = []
    for root, _, names in os.walk(model_dir):
        for name in names:
            path = os.path.join(root, name)
            if atomic_files.is_temporary(name) or "/logs/" in path:
                continue
            try:
                if name.endswith(".json"):
                    json.loads(open(path).read())
                elif name.endswith(".csv"):
                    list(csv.DictReader(open(path)))
                elif name.endswith(".keras") and run_dir.model_fault(path):
                    damaged.append(path)
            except ValueError:
                damaged.append(path)
    checkpoint_dir = os.path.join(model_dir, "checkpoints")
    from keras_siamese import checkpointing

    checkpoint = checkpointing.StepCheckpoint(checkpoint_dir)
    for step in checkpoint.steps_on_disk():
        try:
            checkpoint._metadata(step)
        except checkpointing.CheckpointError as error:
            damaged.append(str(error))
    return damaged


def kill_once(model_dir: str, rng: random.Random, by_file: bool, reader) -> dict:
    resumed_at = newest_step(model_dir)
    process = start(model_dir, f"--checkpoint_every_steps={INTERVAL}")
    output = []
    reader(process, output)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not PROGRESS.search(plain(output)):
        if process.poll() is not None:
            break
        time.sleep(0.02)
    if by_file:  # kill inside a write: when a temporary file appears
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and process.poll() is None:
            found = [n for _, _, ns in os.walk(model_dir) for n in ns if ".tmp-" in n]
            if found:
                break
            time.sleep(0.002)
    else:
        time.sleep(rng.uniform(0.0, 1.0))
    process.kill()
    process.wait()
    process._reader.join(5)
    text = "".join(output)
    trained = resumed_at + steps_seen(text)
    saved = newest_step(model_dir)
    return {
        "finished_before_kill": process.returncode == 0,
        "lost": max(0, trained - saved),
        "damaged": damaged_files(model_dir),
        "started_ok": "Traceback" not in text and not re.search(r"^error:", plain(text), re.M),
        "output": "" if "Traceback" not in text else text[-2000:],
    }


def background_reader(process, output):
    import threading

    def read():
        while True:
            try:
                chunk = os.read(process.terminal, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output.append(chunk.decode("utf-8", "replace"))
        os.close(process.terminal)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    process._reader = thread


def finish(model_dir: str, *extra: str) -> tuple[int, str]:
    process = start(model_dir, *extra)
    output = []
    background_reader(process, output)
    process.wait()
    process._reader.join(10)
    return process.returncode, "".join(output)


def weights(model_dir: str):
    import keras

    import keras_siamese  # noqa: F401  (registers the classes)

    return keras.saving.load_model(os.path.join(model_dir, "model.keras")).get_weights()


def max_difference(a: str, b: str) -> float:
    import numpy as np

    return max(float(np.abs(x - y).max()) for x, y in zip(weights(a), weights(b), strict=True))


def sigterm_once(model_dir: str, rng: random.Random) -> dict:
    resumed_at = newest_step(model_dir)
    process = start(model_dir)
    output = []
    background_reader(process, output)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not PROGRESS.search(plain(output)):
        time.sleep(0.05)
    time.sleep(rng.uniform(0.2, 1.5))
    process.send_signal(signal.SIGTERM)
    process.wait()
    process._reader.join(5)
    text = "".join(output)
    trained = resumed_at + steps_seen(text)
    return {
        "code": process.returncode,
        "lost": max(0, trained - newest_step(model_dir)),
        "damaged": damaged_files(model_dir),
    }


def seconds(model_dir: str) -> float:
    return json.loads(open(os.path.join(model_dir, "train_result.json")).read())["seconds_this_run"]


def report(results: dict) -> str:
    kills, terms = results["kills"], results["sigterms"]
    lost = [k["lost"] for k in kills]
    term_lost = [t["lost"] for t in terms]
    lines = [
        "# Chaos benchmark (issue 22)",
        "",
        f"Run: `train {' '.join(FLAGS)}` ({TOTAL} steps), CPU, "
        f"`--checkpoint_every_steps={INTERVAL}` in the kill phase, the default "
        "(every 10 minutes, and on SIGTERM) in the SIGTERM phase.",
        "",
        "| measure | result | target |",
        "|---|---|---|",
        f"| SIGKILLs (of which inside a write) | {len(kills)} ({results['by_file']}) | 20 |",
        f"| resumes that worked after a SIGKILL | {sum(k['started_ok'] for k in kills)}/"
        f"{len(kills)} | 20/20 |",
        f"| kill run finished with a loadable model | {results['kill_finished']} | yes |",
        f"| files damaged after a kill | {sum(len(k['damaged']) for k in kills)} | 0 |",
        f"| steps lost per SIGKILL (max / mean) | {max(lost)} / {sum(lost) / len(lost):.1f} | "
        f"<= {INTERVAL} |",
        "| (a SIGTERM before training has begun, while TensorFlow loads, ends the process "
        "as usual: nothing trained, nothing lost) | | |",
        f"| SIGTERMs that exited 75 after a checkpoint | {sum(t['code'] == 75 for t in terms)}/"
        f"{len(terms)} | 10/10 |",
        f"| steps lost per SIGTERM (max) | {max(term_lost) if term_lost else '-'} | 0 |",
        f"| SIGTERM run finished with a loadable model | {results['term_finished']} | yes |",
        f"| max abs weight difference, killed run vs uninterrupted | "
        f"{results['kill_difference']:.3g} | <= 1e-6 |",
        f"| max abs weight difference, SIGTERMed run vs uninterrupted | "
        f"{results['term_difference']:.3g} | <= 1e-6 |",
        f"| one checkpoint (s) / training step (s) | {results['save_seconds']:.3f} / "
        f"{results['step_seconds']:.4f} | |",
        f"| checkpoint overhead at the default interval (10 min) | "
        f"{100 * results['save_seconds'] / 600:.3f} % | <= 2 % |",
        f"| checkpoint overhead every {INTERVAL} steps (this run) | "
        f"{100 * results['save_seconds'] / (INTERVAL * results['step_seconds']):.1f} % | |",
        "",
        f"Total benchmark time: {results['wall']:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--sigterms", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join("benchmarks", "results", "chaos.md"))
    options = parser.parse_args()
    rng, began = random.Random(options.seed), time.monotonic()
    work = tempfile.mkdtemp(prefix="chaos-")
    reference, killed, termed = (os.path.join(work, name) for name in ("ref", "kill", "term"))
    code, _ = finish(reference)  # the default interval: no checkpoint but the last
    assert code == 0, "the uninterrupted run failed"
    every = os.path.join(work, "every")
    code, _ = finish(every, f"--checkpoint_every_steps={INTERVAL}")
    saves = TOTAL // INTERVAL
    save_seconds = max(0.0, (seconds(every) - seconds(reference)) / saves)
    kills = []
    by_file = 0
    while len(kills) < options.kills:
        inside = len(kills) % 3 == 2
        by_file += inside
        kills.append(kill_once(killed, rng, inside, background_reader))
        print(f"kill {len(kills)}: {kills[-1]}", flush=True)
    code, text = finish(killed, f"--checkpoint_every_steps={INTERVAL}")
    kill_finished = code == 0 and not damaged_files(killed)
    terms = []
    for _ in range(options.sigterms):
        terms.append(sigterm_once(termed, rng))
        print(f"sigterm {len(terms)}: {terms[-1]}", flush=True)
    code, _ = finish(termed)
    term_finished = code == 0
    results = {
        "kills": kills,
        "sigterms": terms,
        "by_file": by_file,
        "kill_finished": "yes" if kill_finished else f"no ({text[-300:]})",
        "term_finished": "yes" if term_finished else "no",
        "kill_difference": max_difference(killed, reference),
        "term_difference": max_difference(termed, reference),
        "save_seconds": save_seconds,
        "step_seconds": seconds(reference) / TOTAL,
        "wall": time.monotonic() - began,
    }
    text = report(results)
    os.makedirs(os.path.dirname(options.out) or ".", exist_ok=True)
    with open(options.out, "w", encoding="utf-8") as file:
        file.write(text)
    print(text)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
