"""Every metric-learning loss on classes unseen in training, beside raw pixels: one table.

Runs `examples/siamese_fashion_mnist.py` itself (so each number is what a user of the example
gets) once per split of the classes, with every loss of `--losses` from the same SimCLR
pretraining, and collects its table: verification of 3,000 fixed unseen-class pairs (ROC AUC,
EER), leave-one-out retrieval (recall@1, mAP@R, R-precision), NMI of k-means, and training
seconds (the pretraining included), with raw pixels and the SimCLR features measured in the
same run. Writes benchmarks/results/metric_learning.md and .json (whole or absent).

    python benchmarks/metric_learning.py   # every loss on 7,8,9; the example's two on 0,4,9
    python benchmarks/metric_learning.py --losses=multi_similarity --splits=7,8,9
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from keras_siamese import atomic_files, recipes  # noqa: E402
from keras_siamese.loss_names import LOSS_NAMES  # noqa: E402

EXAMPLE = os.path.join(ROOT, "examples", "siamese_fashion_mnist.py")
TARGETS = {"ROC AUC": 0.92, "recall@1": 0.97, "mAP@R": 0.75}  # issue: unseen classes 7-9

flags.DEFINE_list("losses", list(LOSS_NAMES), "Losses of the first split (one pretraining).")
# The example's default losses: the triplet recipe's and siamese-metric's.
EXAMPLE_LOSSES = [recipes.get("siamese-triplet").loss, recipes.get("siamese-metric").loss]
flags.DEFINE_list("other_losses", EXAMPLE_LOSSES, "Losses of the other splits.")
flags.DEFINE_multi_string("splits", ["7,8,9", "0,4,9"], "Unseen classes, one run per split.")
flags.DEFINE_list("example_flags", [], "More flags for the example (e.g. --epochs=2).")
flags.DEFINE_string("work_dir", "runs/metric_learning", "The example's model and export dirs.")
flags.DEFINE_string("output", os.path.join(ROOT, "benchmarks", "results", "metric_learning"),
                    "Results path without extension (.md and .json are written).")  # fmt: skip
FLAGS = flags.FLAGS


def parse_table(stdout: str) -> tuple[list[str], dict[str, list[str]]]:
    """The header and rows of the last markdown table the example printed."""
    lines = [line for line in stdout.splitlines() if line.startswith("|")]
    start = max(index for index, line in enumerate(lines) if line.startswith("| Embedding"))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = {}
    for line in lines[start + 2 :]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return header, rows


def run_split(split: str, losses: list[str]) -> dict:
    """Runs the example on one split; returns its header, rows and wall seconds."""
    name = split.replace(",", "")
    command = [sys.executable, EXAMPLE, f"--unseen_classes={split}"]
    command += [f"--losses={loss}" for loss in losses]
    command += [f"--model_dir={FLAGS.work_dir}/unseen_{name}"]
    command += [f"--export_dir={FLAGS.work_dir}/export_{name}", *FLAGS.example_flags]
    started = time.perf_counter()
    process = subprocess.run(command, capture_output=True, text=True, check=False)
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{process.stderr[-4000:]}")
    header, rows = parse_table(process.stdout)
    return {"command": command[1:], "header": header, "rows": rows,
            "wall_seconds": time.perf_counter() - started}  # fmt: skip


def markdown(results: dict) -> str:
    """One table per split; targets marked where the issue set them (split 7,8,9)."""
    lines = ["# Metric-learning losses on classes unseen in training (Fashion-MNIST)", ""]
    lines += [f"Example flags: `{' '.join(FLAGS.example_flags) or '(defaults)'}`; machine: "
              f"{os.cpu_count()} cores. Targets on 7,8,9: {TARGETS}.", ""]  # fmt: skip
    for split, result in results.items():
        header = result["header"]
        lines += [f"## Unseen classes {split} (example wall time {result['wall_seconds']:.0f} s)"]
        lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += [f"| {row} | " + " | ".join(cells) + " |" for row, cells in result["rows"].items()]
        lines.append("")
    return "\n".join(lines)


def main(_):
    results = {}
    for index, split in enumerate(FLAGS.splits):
        results[split] = run_split(split, FLAGS.other_losses if index else FLAGS.losses)
    text = markdown(results)
    print(text)
    os.makedirs(os.path.dirname(FLAGS.output), exist_ok=True)
    with atomic_files.atomic_write(f"{FLAGS.output}.md") as file:
        file.write(text)
    with atomic_files.atomic_write(f"{FLAGS.output}.json") as file:
        json.dump(results, file, indent=2)


if __name__ == "__main__":
    app.run(main)
