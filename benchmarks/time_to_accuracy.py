"""Minutes of training until the linear probe reaches 85 / 88 / 90% top-1 (issue 25).

Two systems, on the same machine in the same run, on grey Fashion-MNIST (28x28x1) and
`colour32` (its shapes in random colours at 32x32x3, `image_data.py`):

- **package**: exactly what `python -m keras_siamese train` runs on those images: the SimCLR
  recipe with the image rules (`ks.recipes.get("simclr", image_shape=...)`), the precision of
  `--precision=auto` (the faster step here), `recipe.build(...)` over its epochs, `fit` on
  shuffled in-memory batches; it stops when its epochs are done (or at the cap).
- **paper**: a hand-written Keras SimCLR with the paper's CIFAR-10 recipe (`paper_simclr.py`:
  ResNet-18, CIFAR stem, 32x32 views, strength 0.5, no blur, NT-Xent T=0.5, LARS, batch 256),
  its warmup + cosine schedule laid over the steps the cap holds; it trains until the cap.

A training clock stops while evaluating. Every `--probe_every_minutes` of training (and at
the end) one protocol measures the representation: a 20-epoch linear probe (seed 0) on the
features of the first `--probe_train` / `--probe_test` images; raw pixels beside. A
level is reached at the first checkpoint at or above it; not reached: "> CAP" (the cap ended
the run) or "not in M" (its epochs did, after M minutes). The precision probe and the paper's
step timing come before the clock (`setup_seconds`). Writes `time_to_accuracy.json` and `.md`
under --output_dir, whole, after every checkpoint:

    python benchmarks/time_to_accuracy.py                      # 2 data sets x 2 systems x 30 min
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import image_data  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import paper_simclr  # noqa: E402
import tensorflow as tf  # noqa: E402
from recipe_parts import images_dataset  # noqa: E402

import keras_siamese as ks  # noqa: E402
from keras_siamese.atomic_files import atomic_write  # noqa: E402
from keras_siamese.cli import train_precision  # noqa: E402

tf.get_logger().setLevel("ERROR")  # the retracing notes of the many models built here

LEVELS = (85.0, 88.0, 90.0)
DATA_SETS = ("fashion_mnist", "colour32")
SYSTEMS = ("package", "paper")
PROBE_EPOCHS = 20
NEEDED_SPEEDUP = 2.0  # the package must reach each level at least 2x sooner
PAPER_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16", "auto")


def load(name: str, train_examples: int = 0) -> dict:
    """`{"train": (images, labels), "test": ...}`: uint8 images as stored, int64 labels."""
    if name == "fashion_mnist":
        split = f"train[:{train_examples}]" if train_examples else "train"
        splits = {"train": split, "test": "test"}
        return {key: ks.datasets.load_arrays(name, split) for key, split in splits.items()}
    limits = {"train": train_examples or None, "test": None}
    return {key: image_data.build(name, key, limit=limit) for key, limit in limits.items()}


def probe_sets(data: dict, probe_train: int, probe_test: int) -> tuple:
    """The fixed probe subsets: the first `probe_train` train and `probe_test` test images."""
    sizes = {"train": probe_train, "test": probe_test}
    return tuple((data[k][0][: sizes[k]], data[k][1][: sizes[k]]) for k in ("train", "test"))


def probe(train_features, test_features) -> float:
    """The one protocol: a 20-epoch linear probe; top-1 in percent."""
    result = ks.evaluation.linear_probe_on_features(
        *train_features, *test_features, epochs=PROBE_EPOCHS, seed=0
    )
    return round(100 * float(result["top1"]), 2)


def raw_pixels(sets: tuple) -> float:
    """The probe on the images' values in [0, 1], flattened."""
    flat = [(x.reshape(len(x), -1).astype(np.float32) / 255.0, y) for x, y in sets]
    return probe(*flat)


def measurer(model, sets: tuple, input_scale=None):
    """`() -> probe top-1` of `model`'s representation (one traced feature function)."""
    extractor = ks.evaluation.FeatureExtractor(model, input_scale=input_scale)
    return lambda: probe(*(extractor(part, progress=False) for part in sets))


def minutes_to_levels(checkpoints: list[dict], levels=LEVELS) -> dict[str, float | None]:
    """`{level: minutes of the first checkpoint at or above it, or None}`."""
    return {
        f"{level:g}": next((c["minutes"] for c in checkpoints if c["top1"] >= level), None)
        for level in levels
    }


def ratio_text(paper: float | None, package: float | None, paper_minutes: float) -> str:
    """Paper minutes / package minutes at one level and whether it is at least
    NEEDED_SPEEDUP: a lower bound (the paper's whole run) when the paper never got there."""
    if package is None:
        return "no (package not reached)" if paper is not None else "neither reached"
    ratio = (paper_minutes if paper is None else paper) / package
    verdict = "yes" if ratio >= NEEDED_SPEEDUP else ("open" if paper is None else "no")
    return f"{'> ' * (paper is None)}{ratio:.1f}x ({verdict})"


class TrainingClock(keras.callbacks.Callback):
    """Counts training time only; probes every `every_seconds` of it and at the end; stops
    training at `cap_seconds`. `on_checkpoint(point)` receives each checkpoint."""

    def __init__(self, measure, cap_seconds, every_seconds, images_per_step, on_checkpoint):
        super().__init__()
        self.measure, self.on_checkpoint = measure, on_checkpoint
        self.cap_seconds, self.every_seconds = cap_seconds, every_seconds
        self.images_per_step = images_per_step
        self.checkpoints, self.steps, self.paused, self.capped = [], 0, 0.0, False

    def seconds(self) -> float:
        return time.perf_counter() - self.started - self.paused

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()
        self.next_probe = self.every_seconds

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.seconds() < min(self.next_probe, self.cap_seconds):
            return
        if logs and "loss" in logs:  # waits for the device before reading the clock
            keras.ops.convert_to_numpy(logs["loss"])
        self.capped = self.seconds() >= self.cap_seconds
        self.checkpoint()
        while self.next_probe <= self.seconds():
            self.next_probe += self.every_seconds
        self.model.stop_training = self.capped

    def on_train_end(self, logs=None):
        if not self.checkpoints or self.checkpoints[-1]["step"] != self.steps:
            self.checkpoint()

    def checkpoint(self):
        seconds = self.seconds()
        paused_at = time.perf_counter()
        top1 = self.measure()
        self.paused += time.perf_counter() - paused_at
        point = dict(minutes=round(seconds / 60, 3), seconds=round(seconds, 2), step=self.steps)
        point.update(images=self.steps * self.images_per_step, top1=top1)
        point["probe_seconds"] = round(time.perf_counter() - paused_at, 1)
        self.checkpoints.append(point)
        self.on_checkpoint(point)


def package_system(data: dict, args) -> dict:
    """The CLI's SimCLR on these images: `{"model", "fit", "batch_size", "facts"}`."""
    images = data["train"][0]
    shape = tuple(int(side) for side in images.shape[1:])
    recipe = ks.recipes.get("simclr", image_shape=shape)
    batch_size = args.batch_size or recipe.batch_size
    per_epoch = recipe.steps_per_epoch(len(images), batch_size)
    total = recipe.epochs * per_epoch
    dataset = images_dataset(images, batch_size, 0)

    def build_model():
        return recipe.build(shape, total_steps=total, batch_size=batch_size, seed=0)

    policy, timings, how = train_precision.resolve(
        args.precision, None, build_model, lambda: next(iter(dataset))
    )
    print(train_precision.describe(policy, timings, how), flush=True)
    keras.mixed_precision.set_dtype_policy(policy)
    keras.utils.set_random_seed(0)
    model = build_model()
    fit = {"x": dataset, "epochs": recipe.epochs, "steps_per_epoch": per_epoch}
    facts = {
        "precision": policy,
        "precision_seconds_per_step": timings,
        "planned_steps": total,
        "recipe": recipe.get_config(),
    }
    return {"model": model, "fit": fit, "batch_size": batch_size, "facts": facts, "scale": None}


def paper_system(data: dict, args) -> dict:
    """The paper's SimCLR, its schedule over the steps the cap holds at a timed step."""
    images = data["train"][0]
    batch_size = args.batch_size or paper_simclr.BATCH_SIZE
    per_epoch = max(1, len(images) // batch_size)
    dataset = images_dataset(images, batch_size, 0)
    policy = args.paper_precision
    if policy == "auto":
        name, _ = ks.distribute.fastest_precision(
            lambda: paper_simclr.build(per_epoch, per_epoch, batch_size, args.paper_width),
            next(iter(dataset)),
        )
        policy = train_precision.POLICIES[name]
    keras.mixed_precision.set_dtype_policy(policy)
    total, step = args.paper_steps, 0.0
    if not total:
        timing_model = paper_simclr.build(per_epoch, per_epoch, batch_size, args.paper_width)
        step = paper_simclr.step_seconds(timing_model, next(iter(dataset)))
        total = max(1, int(60 * args.cap_minutes / step))
    model = paper_simclr.build(total, per_epoch, batch_size, args.paper_width)
    fit = {"x": dataset, "epochs": 2 * total // per_epoch + 1, "steps_per_epoch": per_epoch}
    facts = {
        "precision": policy,
        "timed_seconds_per_step": round(step, 4),
        "planned_steps": total,
        "recipe": paper_simclr.recipe(args.paper_width, batch_size),
    }
    return {"model": model, "fit": fit, "batch_size": batch_size, "facts": facts, "scale": 1.0}


def train(system: str, data: dict, sets: tuple, args, on_checkpoint) -> dict:
    """Builds and trains one system under the clock; returns its run record."""
    started = time.perf_counter()
    built = (package_system if system == "package" else paper_system)(data, args)
    setup = time.perf_counter() - started
    run = {"system": system, **built["facts"], "setup_seconds": round(setup, 1)}
    clock = TrainingClock(
        measurer(built["model"], sets, built["scale"]),
        60 * args.cap_minutes,
        60 * args.probe_every_minutes,
        built["batch_size"],
        lambda point: on_checkpoint(summarize(run, clock, built["batch_size"])),
    )
    built["model"].fit(**built["fit"], shuffle=False, verbose=0, callbacks=[clock])
    keras.mixed_precision.set_dtype_policy("float32")
    run["stopped"] = "cap" if clock.capped else "epochs done"
    return summarize(run, clock, built["batch_size"])


def summarize(run: dict, clock: TrainingClock, batch_size: int) -> dict:
    """`run` with what the clock measured so far."""
    points = clock.checkpoints
    seconds = points[-1]["seconds"] if points else 0.0
    run.update(
        batch_size=batch_size,
        checkpoints=list(points),
        minutes_to=minutes_to_levels(points),
        best=max((p["top1"] for p in points), default=None),
        final=points[-1]["top1"] if points else None,
        steps=clock.steps,
        training_minutes=round(seconds / 60, 3),
        images_per_second=round(clock.steps * batch_size / max(seconds, 1e-9), 1),
    )
    return run


def markdown(results: dict) -> str:
    config = results["config"]
    cap, headers = config["cap_minutes"], [f"{level:g}%" for level in LEVELS]
    lines = [
        "# Time to accuracy: the package's SimCLR defaults vs the paper's SimCLR",
        "",
        f"Machine: {config['machine']}; TensorFlow {config['tensorflow']}. Minutes of "
        f"training (the clock stops while probing), capped at {cap:g}; probed every "
        f"{config['probe_every_minutes']:g} min and at the end: {PROBE_EPOCHS}-epoch linear "
        f"probe on the first {config['probe_train']:,} train / {config['probe_test']:,} test "
        "images. A level's minutes are the first checkpoint at or above it; images/s are per "
        "second of training (the first step's tracing included).",
        "",
        f"| data | system | precision | raw pixels | {' | '.join(headers)} | best | final | "
        "steps | images/s | stopped |",
        "|---" * (9 + len(LEVELS)) + "|",
    ]
    for name, entry in results["data"].items():
        for system, run in entry["runs"].items():
            minutes = [run["minutes_to"][f"{level:g}"] for level in LEVELS]
            levels = [level_cell(m, run, cap) for m in minutes]
            lines.append(
                f"| {name} | {system} | {run['precision']} | {entry['raw_pixels']:.2f} | "
                + " | ".join(levels)
                + f" | {run['best']} | {run['final']} | {run['steps']:,} | "
                f"{run['images_per_second']:,.0f} | {run.get('stopped', 'running')} |"
            )
    lines += ratios(results) + curves(results)
    return "\n".join(lines) + "\n"


def level_cell(minutes: float | None, run: dict, cap: float) -> str:
    """A level's minutes, "> CAP" (the cap stopped it) or "not in M" (its epochs ended)."""
    if minutes is None:
        ended = f"not in {run.get('training_minutes', cap):.1f}"
        return f"> {cap:g}" if run.get("stopped") == "cap" else ended
    return f"{minutes:.2f}"


def ratios(results: dict) -> list[str]:
    lines = [
        "",
        f"## Paper minutes / package minutes (the package must reach each level at least "
        f"{NEEDED_SPEEDUP:g}x sooner)",
        "",
        "| data | " + " | ".join(f"{level:g}%" for level in LEVELS) + " |",
        "|---" * (1 + len(LEVELS)) + "|",
    ]
    for name, entry in results["data"].items():
        runs = entry["runs"]
        if not {"package", "paper"} <= set(runs):
            continue
        package, paper = runs["package"]["minutes_to"], runs["paper"]["minutes_to"]
        cells = [
            ratio_text(paper[key], package[key], runs["paper"]["training_minutes"])
            for key in (f"{level:g}" for level in LEVELS)
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def curves(results: dict) -> list[str]:
    lines = ["", "## Curves (training minutes: probe top-1 %)", ""]
    for name, entry in results["data"].items():
        for system, run in entry["runs"].items():
            points = ", ".join(f"{p['minutes']:.2f}: {p['top1']:.2f}" for p in run["checkpoints"])
            lines.append(f"- {name} / {system}: {points}")
    return lines


def write(results: dict, output_dir: str) -> None:
    os.makedirs(output_dir, exist_ok=True)
    with atomic_write(os.path.join(output_dir, "time_to_accuracy.json")) as handle:
        handle.write(json.dumps(results, indent=1, default=str) + "\n")
    with atomic_write(os.path.join(output_dir, "time_to_accuracy.md")) as handle:
        handle.write(markdown(results))


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=",".join(DATA_SETS))
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--cap_minutes", type=float, default=30.0)
    parser.add_argument("--probe_every_minutes", type=float, default=1.0)
    parser.add_argument("--probe_train", type=int, default=10_000)
    parser.add_argument("--probe_test", type=int, default=2_000)
    policy_help = "the paper baseline's dtype policy (auto: the faster step here)"
    parser.add_argument("--paper_precision", choices=PAPER_POLICIES, default="float32",
                        help=policy_help)  # fmt: skip
    parser.add_argument("--output_dir", default=os.path.join(HERE, "results"))
    hidden = argparse.SUPPRESS  # for smoke tests: smaller runs than the benchmark's
    parser.add_argument("--train_examples", type=int, default=0, help=hidden)
    parser.add_argument("--batch_size", type=int, default=0, help=hidden)
    parser.add_argument("--paper_width", type=int, default=64, help=hidden)
    parser.add_argument("--paper_steps", type=int, default=0, help=hidden)  # 0: timed
    parser.add_argument("--precision", default=train_precision.AUTO, help=hidden)
    args = parser.parse_args(argv)
    args.data, args.systems = args.data.split(","), args.systems.split(",")
    for flag, values, known in (("data", args.data, DATA_SETS), ("systems", args.systems, SYSTEMS)):
        if not values or set(values) - set(known):
            parser.error(f"--{flag} takes some of {','.join(known)}. Received: {values}")
    return args


def main(argv=None) -> dict:
    args = parse(argv)
    config = {k: v for k, v in vars(args).items() if k != "output_dir"}
    config.update(machine=machine(), tensorflow=tf.__version__, keras=keras.__version__)
    results = {"config": config, "data": {}}
    for name in args.data:
        data = load(name, args.train_examples)
        sets = probe_sets(data, args.probe_train, args.probe_test)
        entry = results["data"][name] = {"raw_pixels": raw_pixels(sets), "runs": {}}
        print(f"[{name}] raw pixels: linear probe {entry['raw_pixels']:.2f}%", flush=True)
        for system in args.systems:

            def on_checkpoint(run, name=name, system=system, entry=entry):
                entry["runs"][system] = run
                print(console_line(name, system, run), flush=True)
                write(results, args.output_dir)

            entry["runs"][system] = train(system, data, sets, args, on_checkpoint)
            write(results, args.output_dir)
    return results


def machine() -> str:
    """The CPU's model name and core count, and the GPUs' names."""
    cpu = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as info:
            names = (line.split(":", 1)[1].strip() for line in info if "model name" in line)
            cpu = next(names, cpu)
    devices = tf.config.list_physical_devices("GPU")
    gpus = [tf.config.experimental.get_device_details(d).get("device_name", "GPU") for d in devices]
    return f"{cpu} ({os.cpu_count()} CPUs); GPUs: {', '.join(gpus) or 'none'}"


def console_line(name: str, system: str, run: dict) -> str:
    point, speed = run["checkpoints"][-1], f"{run['images_per_second']:,.0f} images/s"
    return (f"[{name}/{system}] {point['minutes']:7.2f} min  step {point['step']:>6,}  linear "
            f"probe {point['top1']:6.2f}%  ({speed})")  # fmt: skip


if __name__ == "__main__":
    main()
