"""The GPU path in one run: is there a GPU, how fast is the SimCLR step, does training learn?

Run through `benchmarks/device_check.sh` (it bounds the run at 8 minutes). On a machine
without a usable GPU it stops after the TensorFlow import with exit status 2 and says why
(no GPU visible, or a TensorFlow built without CUDA such as `tensorflow-cpu`).

With a GPU it prints, and writes to `benchmarks/results/device_check.md` and `.json`:

1. the device, and its measured matmul peaks (8192x8192 `tf.linalg.matmul`: float32, which
   TensorFlow runs as TF32 on Ampere and newer, and float16/bfloat16);
2. images/s of the ResNet-18 (width 64, small-image stem) SimCLR training step at 32x32x3,
   batch 512, in float32 and mixed precision (float16, or bfloat16 where the GPU has no fast
   float16), each with XLA off and on; its GFLOP/s (Conv2D and Dense multiply-adds x 2 x 3
   for forward and backward, x 2 views) and the fraction of the matmul peak of its precision;
3. SimCLR on Fashion-MNIST resized to 32x32 (ResNet-18, batch 512, the fastest configuration
   of 2.) for `--epochs` epochs with the kNN monitor (10,000 train images as memory, 2,000
   test queries) after every epoch. It fails (exit 1) unless the kNN accuracy rises above
   the random-initialisation one.
"""

import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from absl import app, flags  # noqa: E402

flags.DEFINE_integer("batch_size", 512, "Source images per step (each gives two views).")
flags.DEFINE_integer("timed_steps", 10, "Timed steps per configuration (median reported).")
flags.DEFINE_integer("epochs", 3, "Fashion-MNIST epochs (117 steps each at batch 512).")
flags.DEFINE_float("deadline_minutes", 7.5, "Skip what would not finish before this.")
flags.DEFINE_string("output_dir", "benchmarks/results", "Where the results are written.")
FLAGS = flags.FLAGS

NO_GPU = 2


def find_gpu(tf):
    """The first GPU, or exits with status 2 and the reason."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return gpus[0]
    reason = (
        "TensorFlow sees no GPU."
        if tf.test.is_built_with_cuda()
        else "this TensorFlow is built without CUDA (e.g. tensorflow-cpu): install "
        "`tensorflow[and-cuda]` in the venv on a machine with an NVIDIA driver."
    )
    print(
        f"device_check: FAILED: no usable GPU: {reason} Devices: "
        f"{[device.name for device in tf.config.list_physical_devices()]}. "
        "This check is for a machine with a GPU; on CPUs use benchmarks/throughput.py.",
        file=sys.stderr,
        flush=True,
    )
    sys.exit(NO_GPU)


def main(argv):
    del argv
    started = time.perf_counter()
    import tensorflow as tf

    gpu = find_gpu(tf)
    import keras
    import numpy as np
    from flops import forward_flops

    import keras_siamese as ks

    deadline = started + 60 * FLAGS.deadline_minutes
    details = tf.config.experimental.get_device_details(gpu)
    name = details.get("device_name", gpu.name)
    capability = details.get("compute_capability", (0, 0))
    mixed = "float16" if capability >= (7, 0) else "bfloat16"
    print(f"device_check: {name}, compute capability {capability}", flush=True)

    def seconds_of(function, repeats):
        function()
        function()  # traced and warm
        times = []
        for _ in range(repeats):
            begin = time.perf_counter()
            function()
            times.append(time.perf_counter() - begin)
        return float(np.median(times))

    peaks = {}
    for dtype in ("float32", mixed):
        a = tf.random.normal([8192, 8192], dtype=dtype)
        b = tf.random.normal([8192, 8192], dtype=dtype)
        matmul = tf.function(lambda a=a, b=b: tf.reduce_sum(tf.cast(a @ b, tf.float32)))
        peaks[dtype] = 2 * 8192**3 / seconds_of(lambda m=matmul: m().numpy(), 10)
        print(f"matmul peak {dtype}: {peaks[dtype] / 1e12:.1f} TFLOP/s", flush=True)

    def simclr(shape, precision, jit_compile, steps):
        ks.distribute.set_mixed_precision("none" if precision == "float32" else precision)
        keras.utils.set_random_seed(0)
        encoder = ks.encoders.resnet(18, shape, small_images=True, width=64)
        augmenter = ks.augment.simclr_augmenter(shape[:2], channels=shape[-1], strength=0.5)
        model = ks.SimCLR(encoder, augmenter, projection_dims=(512, 128), temperature=0.2)
        schedule = ks.optimizers.WarmupCosine(1.2, total_steps=steps, warmup_steps=steps // 10)
        model.compile(optimizer=ks.optimizers.LARS(schedule), jit_compile=jit_compile)
        return model

    rows = []
    batch = FLAGS.batch_size
    images = np.random.default_rng(0).integers(0, 256, (batch, 32, 32, 3)).astype("uint8")
    for precision in ("float32", mixed):
        for jit_compile in (False, True):
            if time.perf_counter() > deadline - 240:
                print(f"skipped {precision} XLA={jit_compile}: too close to the deadline")
                continue
            model = simclr((32, 32, 3), precision, jit_compile, 1000)
            model.make_train_function()  # returns None when it makes the function
            function = model.train_function
            iterator = iter(tf.data.Dataset.from_tensors(images).repeat())
            seconds = seconds_of(lambda f=function, i=iterator: f(i)["loss"].numpy(),
                                 FLAGS.timed_steps)  # fmt: skip
            flops = 2 * 3 * (forward_flops(model.encoder) + forward_flops(model.projector))
            row = {
                "precision": precision,
                "xla": jit_compile,
                "step_ms": 1000 * seconds,
                "images_per_second": batch / seconds,
                "tflops": flops * batch / seconds / 1e12,
                "fraction_of_peak": flops * batch / seconds / peaks[precision],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    ks.distribute.set_mixed_precision("none")
    if not rows:
        print("device_check: FAILED: no configuration timed before the deadline", file=sys.stderr)
        sys.exit(1)
    best = max(rows, key=lambda row: row["images_per_second"])

    # ---- a few hundred real steps with the kNN monitor
    (train_x, train_y), (test_x, test_y) = (
        ks.datasets.load_arrays("fashion_mnist", split) for split in ("train", "test")
    )

    def at_32(images):
        resized = tf.image.resize(tf.constant(images, tf.float32), (32, 32), antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8).numpy()

    train_x, test_x = at_32(train_x), at_32(test_x)
    steps_per_epoch = len(train_x) // batch
    model = simclr((32, 32, 1), best["precision"], best["xla"], FLAGS.epochs * steps_per_epoch)
    ks.distribute.set_mixed_precision("none")
    memory, queries = (train_x[:10000], train_y[:10000]), (test_x[:2000], test_y[:2000])
    random_knn = ks.evaluation.knn_accuracy(model, memory, queries, progress=False)
    print(f"kNN top-1 at random initialisation: {random_knn:.4f}", flush=True)
    monitor = ks.callbacks.KNNMonitor(memory, queries, every=1, verbose=1)
    dataset = (
        tf.data.Dataset.from_tensor_slices(train_x)
        .shuffle(len(train_x), seed=0)
        .batch(batch, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    epochs = FLAGS.epochs
    budget = deadline - time.perf_counter()
    if budget < 60:
        epochs = 0
    train_started = time.perf_counter()
    history = model.fit(dataset, epochs=epochs, callbacks=[monitor], verbose=2) if epochs else None
    train_seconds = time.perf_counter() - train_started
    knn = [float(value) for value in history.history["val_knn_accuracy"]] if history else []
    final_knn = knn[-1] if knn else None
    result = {
        "device": name, "compute_capability": list(capability), "mixed_precision": mixed,
        "matmul_peak_tflops": {k: v / 1e12 for k, v in peaks.items()}, "simclr_step": rows,
        "fashion_mnist": {"epochs": epochs, "steps": epochs * steps_per_epoch,
                          "seconds": train_seconds, "knn_random_init": random_knn,
                          "knn_per_epoch": knn, "configuration": best},
        "wall_seconds": time.perf_counter() - started, "tensorflow": tf.__version__,
        "platform": platform.platform(),
    }  # fmt: skip
    write_outputs(result)
    if final_knn is None or final_knn <= random_knn:
        print(
            f"device_check: FAILED: kNN top-1 did not rise above random init "
            f"({final_knn} <= {random_knn:.4f})",
            file=sys.stderr,
        )
        sys.exit(1)
    print(f"device_check: OK in {result['wall_seconds']:.0f} s", flush=True)


def write_outputs(result):
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    base = os.path.join(FLAGS.output_dir, "device_check")
    with open(base + ".json", "w") as file:
        json.dump(result, file, indent=2, default=float)
    lines = [
        f"# Device check: {result['device']}",
        "",
        "Produced by `bash benchmarks/device_check.sh` in "
        f"{result['wall_seconds'] / 60:.1f} minutes. Matmul peak (TFLOP/s): "
        + ", ".join(f"{k} {v:.1f}" for k, v in result["matmul_peak_tflops"].items())
        + ".",
        "",
        "| ResNet-18 SimCLR step, 32x32x3 | XLA | ms/step | images/s | TFLOP/s | of peak |",
        "|---|---|---|---|---|---|",
        *[
            f"| {row['precision']} | {'on' if row['xla'] else 'off'} | {row['step_ms']:.0f} "
            f"| {row['images_per_second']:.0f} | {row['tflops']:.1f} "
            f"| {100 * row['fraction_of_peak']:.0f}% |"
            for row in result["simclr_step"]
        ],
        "",
        f"Fashion-MNIST at 32x32: {result['fashion_mnist']['steps']} steps in "
        f"{result['fashion_mnist']['seconds']:.0f} s; kNN top-1 "
        f"{result['fashion_mnist']['knn_random_init']:.4f} at random init, then "
        f"{result['fashion_mnist']['knn_per_epoch']} per epoch.",
    ]
    with open(base + ".md", "w") as file:
        file.write("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    app.run(main)
