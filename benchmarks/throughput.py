"""Training throughput of SimCLR and SimSiam, against the machine's measured matmul peak.

For each configuration, builds the model and traces Keras' own `train_function` (what
`fit` runs each step) on one batch of 256 uint8 images; then times `--steps` rounds, each
running one step of every configuration in turn (after `--warmup` untimed rounds), and
reports each configuration's median step time. Interleaving makes a change of load on a
shared machine hit every configuration alike instead of whichever ran at that moment.
Images/s count each source image once (SimCLR and SimSiam make two views of it).

Configurations: ResNet-18 with the small-image stem at 32x32x3 (the papers' CIFAR
encoder, heads at the package defaults) and the Fashion-MNIST demo's encoder (ResNet-10
of width 16 at 28x28x1, the demo's head sizes); `jit_compile` on/off, float32 or
`mixed_bfloat16`, augmentation inside the train step (the default) or in `tf.data`
(`map` with one parallel call, `prefetch(1)`: the model then receives the two views).
A hand-written `GradientTape` step (same encoder, projection head and NT-Xent, pre-made
views, no augmentation or metrics) is the reference for the package's overhead.

In the same run it measures the fp32 matmul peak (median time of a 4096x4096
`tf.linalg.matmul`) and counts the model's FLOPs per image analytically from the layer
shapes (Conv2D and Dense multiply-adds x 2; training = 3x the forward pass, per view),
and reports achieved GFLOP/s and its fraction of the peak (MFU). `--breakdown` also times
the parts of the ResNet-18 SimCLR step alone in the same rounds (augmentation, encoder
forward, encoder forward+backward) to show where the milliseconds go.

Writes `benchmarks/results/throughput.md` (and `.json`).

Run: `python benchmarks/throughput.py` (~15 min on 2 quiet CPU cores) or `--quick` (defaults
only, ~6 min); `--encoders=resnet18 --methods=SimCLR,plain` picks a subset.
"""

import gc
import json
import os
import platform
import statistics
import sys
import time

from absl import app, flags

flags.DEFINE_bool("quick", False, "Only the default configuration of each model.")
flags.DEFINE_integer("batch_size", 256, "Source images per step.")
flags.DEFINE_integer("steps", 5, "Timed steps per configuration (the median is reported).")
flags.DEFINE_integer("warmup", 0, "Untimed steps after the first (tracing) step.")
flags.DEFINE_bool("breakdown", True, "Time the parts of the ResNet-18 SimCLR step.")
flags.DEFINE_list("encoders", ["resnet18", "demo"], "Encoders to time: resnet18, demo.")
flags.DEFINE_list(
    "methods", ["SimCLR", "SimSiam", "plain"], "Steps to time: SimCLR, SimSiam, plain."
)
flags.DEFINE_string("output_dir", "benchmarks/results", "Where the results are written.")
flags.DEFINE_string("output_name", "throughput", "File name (without .md/.json) of the results.")
FLAGS = flags.FLAGS

ENCODERS = {
    # name: (resnet depth, width, image shape, SimCLR kwargs, SimSiam kwargs)
    "ResNet-18 32x32x3": (18, 64, (32, 32, 3), {}, {}),
    "demo ResNet-10/16 28x28x1": (
        10, 16, (28, 28, 1),
        {"projection_dims": (512, 128), "temperature": 0.2},
        {"projection_dim": 512, "projection_layers": 2, "predictor_hidden_dim": 128},
    ),
}  # fmt: skip
DEFAULT = {"jit_compile": False, "precision": "float32", "augmentation": "in step"}


ENCODER_FLAGS = {"resnet18": "ResNet-18 32x32x3", "demo": "demo ResNet-10/16 28x28x1"}
METHOD_FLAGS = {"SimCLR": "SimCLR", "SimSiam": "SimSiam", "plain": "plain GradientTape"}


def configurations(quick, encoders=tuple(ENCODER_FLAGS), methods=tuple(METHOD_FLAGS)):
    """(encoder, method, options) to time: defaults, then one factor changed at a time."""
    variations = [
        {"jit_compile": True},
        {"jit_compile": True, "augmentation": "in tf.data"},
        {"precision": "bfloat16"},
        {"augmentation": "in tf.data"},
    ]
    runs = []
    for encoder in ENCODERS:
        runs += [(encoder, "SimCLR", DEFAULT), (encoder, "SimSiam", DEFAULT)]
        runs.append((encoder, "plain GradientTape", DEFAULT))
        if quick:
            continue
        big = encoder.startswith("ResNet-18")
        for method in ("SimCLR",) if big else ("SimCLR", "SimSiam"):
            runs += [(encoder, method, {**DEFAULT, **change}) for change in variations]
    for name, values, known in (
        ("encoders", encoders, ENCODER_FLAGS),
        ("methods", methods, METHOD_FLAGS),
    ):
        if not set(values) <= set(known):
            raise app.UsageError(f"--{name} takes {sorted(known)}. Received: {values}")
    chosen_encoders = {ENCODER_FLAGS[name] for name in encoders}
    chosen_methods = {METHOD_FLAGS[name] for name in methods}
    return [run for run in runs if run[0] in chosen_encoders and run[1] in chosen_methods]


def main(argv):
    del argv
    measure()
    # The models, train functions and tf.data iterators of `measure` reference each other,
    # so only the garbage collector frees them; left to the collection at interpreter
    # shutdown, an iterator's destructor waits forever for its (already stopped) threads.
    gc.collect()


def measure():
    """Builds, traces and times every configuration, then writes the results."""
    import keras
    import numpy as np
    import tensorflow as tf
    from flops import forward_flops

    import keras_siamese as ks

    started = time.perf_counter()
    load_before = os.getloadavg()
    batch = FLAGS.batch_size

    def median_seconds(function, repeats, warmup):
        for _ in range(warmup):
            function()
        times = []
        for _ in range(repeats):
            begin = time.perf_counter()
            function()
            times.append(time.perf_counter() - begin)
        return statistics.median(times), times

    # ---- the machine's fp32 matmul peak (measured again at the end; the larger one is used)
    size = 4096
    a = tf.random.normal([size, size])
    b = tf.random.normal([size, size])
    matmul = tf.function(lambda: tf.reduce_sum(tf.linalg.matmul(a, b)))

    def matmul_peak():
        seconds, _ = median_seconds(lambda: matmul().numpy(), repeats=7, warmup=2)
        peak = 2 * size**3 / seconds
        print(f"fp32 matmul: {peak / 1e9:.1f} GFLOP/s ({size}x{size}, {seconds * 1e3:.0f} ms)")
        return peak

    peaks = [matmul_peak()]
    peak = peaks[0]

    def build(encoder_name, method, options):
        depth, width, shape, simclr_kwargs, simsiam_kwargs = ENCODERS[encoder_name]
        policy = "mixed_bfloat16" if options["precision"] == "bfloat16" else "float32"
        keras.mixed_precision.set_global_policy(policy)
        keras.utils.set_random_seed(0)
        encoder = ks.encoders.resnet(depth, shape, small_images=True, width=width)
        augmenter = ks.augment.simclr_augmenter(shape[:2], channels=shape[-1], strength=0.5)
        in_data = options["augmentation"] == "in tf.data"
        if method == "SimCLR":
            cls = with_views_from_data(ks.SimCLR) if in_data else ks.SimCLR
            model = cls(encoder, augmenter, **simclr_kwargs)
        else:
            cls = with_views_from_data(ks.SimSiam) if in_data else ks.SimSiam
            model = cls(encoder, augmenter, **simsiam_kwargs)
        model.compile(keras.optimizers.SGD(0.01, momentum=0.9), jit_compile=options["jit_compile"])
        images = np.random.default_rng(0).integers(0, 256, (batch, *shape)).astype("uint8")
        dataset = tf.data.Dataset.from_tensors(images).repeat()
        if in_data:

            def views(images):
                return augmenter(tf.concat([images, images], axis=0), training=True)

            dataset = dataset.map(views, num_parallel_calls=1).prefetch(1)
        return model, dataset, 2 * 3 * forward_flops(model)

    def with_views_from_data(base):
        """`base` whose batches are the two views, made in tf.data, stacked on the batch axis."""

        class ViewsFromData(base):
            def two_views(self, images):
                return tf.split(images, 2, axis=0)

        ViewsFromData.__name__ = base.__name__
        return ViewsFromData

    def plain_step(encoder_name):
        """The reference: a hand-written step on pre-made views, no augmentation or metrics."""
        depth, width, shape, simclr_kwargs, _ = ENCODERS[encoder_name]
        keras.mixed_precision.set_global_policy("float32")
        keras.utils.set_random_seed(0)
        encoder = ks.encoders.resnet(depth, shape, small_images=True, width=width)
        projector = ks.heads.ProjectionHead(simclr_kwargs.get("projection_dims", (2048, 128)))
        temperature = simclr_kwargs.get("temperature", 0.5)
        views = tf.random.uniform((2 * batch, *shape))
        projector.build((None, encoder.output_shape[-1]))
        optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
        variables = encoder.trainable_variables + projector.trainable_variables
        optimizer.build(variables)

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                z = projector(encoder(views, training=True), training=True)
                z_a, z_b = tf.split(z, 2, axis=0)
                loss = ks.losses.nt_xent(z_a, z_b, temperature=temperature)
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
            return loss

        flops = 2 * 3 * (forward_flops(encoder) + forward_flops(projector))
        return (lambda: step().numpy()), flops

    # ---- build and trace every configuration, then time them in interleaved rounds, so a
    # change of load on a shared machine hits every configuration alike.
    rows, runners = [], []
    for encoder_name, method, options in configurations(FLAGS.quick, FLAGS.encoders, FLAGS.methods):
        label = f"{encoder_name} | {method} | " + ", ".join(f"{k}={v}" for k, v in options.items())
        print(f"== building and tracing {label}", flush=True)
        row = {"encoder": encoder_name, "method": method, **options}
        rows.append(row)
        try:
            trace_started = time.perf_counter()
            if method == "plain GradientTape":
                run, flops = plain_step(encoder_name)
            else:
                model, dataset, flops = build(encoder_name, method, options)
                model.make_train_function()
                iterator = iter(dataset)

                def run(model=model, iterator=iterator):
                    return float(model.train_function(iterator)["loss"])

            run()  # traces (and XLA-compiles)
            row["first_step_seconds"] = time.perf_counter() - trace_started
            row["train_gflop_per_image"] = flops / 1e9
            runners.append((row, run))
        except Exception as error:  # noqa: BLE001 - a failing configuration is a result too
            row["error"] = error_summary(error)
            print(f"   failed: {row['error']}", flush=True)
    keras.mixed_precision.set_global_policy("float32")
    parts = simclr_parts(ks, keras, tf, batch) if FLAGS.breakdown else {}
    for function in parts.values():
        function()  # traces

    rounds = FLAGS.warmup + FLAGS.steps
    part_times = {name: [] for name in parts}
    for round_index in range(rounds):
        print(f"== round {round_index + 1}/{rounds}", flush=True)
        for row, run in runners:
            begin = time.perf_counter()
            run()
            if round_index >= FLAGS.warmup:
                row.setdefault("step_times", []).append(time.perf_counter() - begin)
        for name, function in parts.items():
            begin = time.perf_counter()
            function()
            if round_index >= FLAGS.warmup:
                part_times[name].append(time.perf_counter() - begin)

    peaks.append(matmul_peak())
    peak = max(peaks)
    for row, _ in runners:
        seconds = statistics.median(row["step_times"])
        flops = row["train_gflop_per_image"] * 1e9
        row.update(
            {
                "step_seconds": seconds,
                "images_per_second": batch / seconds,
                "achieved_gflops": flops * batch / seconds / 1e9,
                "mfu": flops * batch / seconds / peak,
            }
        )
    breakdown = {name: 1e3 * statistics.median(times) for name, times in part_times.items()}
    write_outputs(rows, peaks, breakdown, time.perf_counter() - started, load_before, tf, keras)


def error_summary(error):
    """One line saying why a configuration failed (XLA names the unsupported ops)."""
    message = str(error)
    marker = "Detected unsupported operations"
    if marker in message:
        ops = message.split(marker, 1)[1].split(": ", 1)[-1].split(" (", 1)[0]
        return f"XLA cannot compile the step: no XLA kernel for {ops}"
    lines = [line for line in message.splitlines() if line.strip()]
    return f"{type(error).__name__}: {(lines[-1] if lines else '')[:200]}"


def simclr_parts(ks, keras, tf, batch):
    """The parts of the ResNet-18 SimCLR step as functions to time: where the time goes."""
    keras.utils.set_random_seed(0)
    encoder = ks.encoders.resnet(18, (32, 32, 3), small_images=True, width=64)
    augmenter = ks.augment.simclr_augmenter((32, 32), channels=3, strength=0.5)
    images = tf.cast(tf.random.uniform((batch, 32, 32, 3), 0, 256, tf.int32), tf.uint8)
    views = tf.random.uniform((2 * batch, 32, 32, 3))

    @tf.function
    def augment_only():
        return tf.reduce_sum(augmenter(tf.concat([images, images], axis=0), training=True))

    @tf.function
    def forward():
        return tf.reduce_sum(encoder(views, training=True))

    @tf.function
    def forward_backward():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(encoder(views, training=True))
        gradients = tape.gradient(loss, encoder.trainable_variables)
        # Use every gradient, or graph pruning drops the unused weight gradients.
        return tf.add_n([tf.reduce_sum(gradient) for gradient in gradients])

    return {
        "augmentation of both views": lambda: augment_only().numpy(),
        "encoder forward (2 views)": lambda: forward().numpy(),
        "encoder forward + backward (2 views)": lambda: forward_backward().numpy(),
    }


def write_outputs(rows, peaks, breakdown, wall, load_before, tf, keras):
    import numpy as np

    peak = max(peaks)
    try:
        with open("/proc/cpuinfo") as file:
            cpu = next(line.split(":", 1)[1].strip() for line in file if "model name" in line)
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    cores = len(os.sched_getaffinity(0))
    load_after = os.getloadavg()
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    payload = {
        "batch_size": FLAGS.batch_size, "timed_steps": FLAGS.steps, "warmup": FLAGS.warmup,
        "fp32_matmul_peak_gflops": peak / 1e9, "matmul_measurements_gflops":
        [p / 1e9 for p in peaks], "rows": rows, "breakdown_ms": breakdown,
        "wall_seconds": wall, "cpu": cpu, "cores": cores, "load_before": load_before,
        "load_after": load_after, "tensorflow": tf.__version__, "keras": keras.__version__,
        "numpy": np.__version__, "python": platform.python_version(),
    }  # fmt: skip
    base = os.path.join(FLAGS.output_dir, FLAGS.output_name)
    with open(base + ".json", "w") as file:
        json.dump(payload, file, indent=2)

    header = "| Encoder | Method | jit | Precision | Augmentation | Images/s | Step (ms) "
    header += "| GFLOP/image (train) | GFLOP/s | MFU |"
    lines = [header, "|" + "---|" * 10]
    for row in rows:
        cells = [row["encoder"], row["method"], "on" if row["jit_compile"] else "off"]
        cells += [row["precision"], row["augmentation"]]
        if "error" in row:
            cells += [f"failed: {row['error']}", "", "", "", ""]
        else:
            cells += [
                f"{row['images_per_second']:.1f}",
                f"{row['step_seconds'] * 1e3:.0f}",
                f"{row['train_gflop_per_image']:.2f}",
                f"{row['achieved_gflops']:.1f}",
                f"{100 * row['mfu']:.0f}%",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    text = [
        "# Training throughput",
        "",
        f"Produced by `python {' '.join(sys.argv)}` in "
        f"{wall / 60:.1f} minutes on {cpu} ({cores} usable cores; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after: above ~{cores} the machine "
        f"was shared and the numbers are low). TensorFlow {tf.__version__}, Keras "
        f"{keras.__version__}.",
        "",
        f"fp32 matmul peak (median of 7 4096x4096 `tf.linalg.matmul`, measured before and "
        f"after the runs: {', '.join(f'{p / 1e9:.1f}' for p in peaks)}; the larger is used): "
        f"**{peak / 1e9:.1f} GFLOP/s**. Batch {FLAGS.batch_size} source images; median of "
        f"{FLAGS.steps} timed steps per configuration, in rounds of one step of every "
        f"configuration, after the first (tracing) step and {FLAGS.warmup} warm-up round(s). "
        "FLOPs: Conv2D and "
        "Dense multiply-adds x 2, x 3 for forward + backward, x 2 views (BatchNorm, "
        "activations, augmentation and the NT-Xent logits are not counted). MFU = achieved "
        "GFLOP/s / fp32 peak (also for bfloat16 rows).",
        "",
        *lines,
        "",
        '`jit_compile`: the package leaves Keras\' default `"auto"`, which is off on '
        "CPU-only machines and on with a GPU/TPU; the jit rows above show what XLA does "
        "on this machine.",
    ]
    if breakdown:
        text += [
            "",
            "Where the milliseconds of the ResNet-18 SimCLR step go (the parts timed alone, "
            "in the same rounds as the steps):",
            "",
        ]
        text += [f"- {name}: {ms:.0f} ms" for name, ms in breakdown.items()]
        default = next(
            (
                r for r in rows
                if r["encoder"].startswith("ResNet-18") and r["method"] == "SimCLR"
                and r.get("step_seconds") and r["augmentation"] == "in step"
                and not r["jit_compile"] and r["precision"] == "float32"
            ),
            None,
        )  # fmt: skip
        if default:
            rest = default["step_seconds"] * 1e3 - sum(
                breakdown[k]
                for k in ("augmentation of both views", "encoder forward + backward (2 views)")
            )
            text.append(
                f"- the rest of the full step ({default['step_seconds'] * 1e3:.0f} ms): heads, "
                f"NT-Xent, optimizer update, metrics: {rest:.0f} ms"
                + (
                    " (negative: the rest is below the run-to-run noise of the timings)"
                    if rest < 0
                    else ""
                )
            )
    with open(base + ".md", "w") as file:
        file.write("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    app.run(main)
