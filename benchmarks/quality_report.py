"""What `quality.py` writes: the Markdown table and its checks, the JSON, the kNN-curve plot.

`run` is `quality.py`'s description of the run: its flags (`budget`, `methods`, `tag`,
`fine_tune`, `precision`, `seed`, `output_dir`, `default_methods`), the budget's values,
the precision probe, the wall time and the load averages. Benchmark code, imported by
`quality.py` only.
"""

import json
import os
import platform

NAMES = {
    "simclr": "SimCLR",
    "simsiam": "SimSiam",
    "byol": "BYOL",
    "moco": "MoCo v2",
    "nnclr": "NNCLR",
    "dino": "DINO",
    "barlow_twins": "Barlow Twins",
    "vicreg": "VICReg",
    "swav": "SwAV",
    "mae": "MAE",
    "siamese": "Siamese (triplet)",
    "supervised": "Supervised (cross-entropy)",
    "random": "Random init",
    "pixels": "Raw pixels",
}
TARGETS = {"simclr": {"linear": 0.88, "knn": 0.85}, "simsiam": {"linear": 0.87}}
SELF_SUPERVISED = (
    "simclr", "simsiam", "byol", "moco", "nnclr", "dino", "barlow_twins", "vicreg", "swav", "mae",
)  # fmt: skip
# The ViT issue's targets in points over raw pixels (and MAE's fine-tuning over the same ViT
# from random init): `{method: [(protocol, fraction), ...]}`.
VIT_TARGETS = {"dino": [("knn", None)], "mae": [("fine_tune", "1%"), ("fine_tune", "10%")]}
PROTOCOLS = [
    ("knn", None, "kNN"),
    ("linear", None, "Linear"),
    ("sklearn", None, "Linear (sklearn)"),
    ("linear_few", "1%", "Linear 1%"),
    ("linear_few", "10%", "Linear 10%"),
    ("fine_tune", "1%", "Fine-tune 1%"),
    ("fine_tune", "10%", "Fine-tune 10%"),
]


def environment():
    """Versions and hardware of this run."""
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_siamese as ks

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as file:
            names = [line.split(":", 1)[1].strip() for line in file if "model name" in line]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "keras_siamese": ks.__version__,
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_cores_usable": len(os.sched_getaffinity(0)),
        "accelerators": [
            device.name
            for device in tf.config.list_physical_devices()
            if device.device_type != "CPU"
        ],
    }


def percent(value):
    return "—" if value is None else f"{100 * value:.1f}"


def top1(row, protocol, fraction=None):
    """A row's top-1 for `protocol` (knn, linear, sklearn, linear_few, fine_tune) or None."""
    if not row or "knn" not in row:
        return None
    if protocol == "knn":
        return row["knn"]["top1"]
    if protocol == "linear":
        return row["linear_probe"]["top1"]
    if protocol == "sklearn":
        return row["sklearn"]["top1"]
    if protocol == "linear_few":
        return row.get("few_label_linear", {}).get(fraction, {}).get("top1")
    return row.get("fine_tune", {}).get(fraction, {}).get("top1")


def _against_pixels(row, pixels):
    """The self-supervised checks: above raw pixels everywhere, 1% at least pixels + 5."""
    below = [
        f"{label} ({percent(top1(row, p, f))} vs {percent(top1(pixels, p, f))})"
        for p, f, label in PROTOCOLS
        if None not in (top1(row, p, f), top1(pixels, p, f))
        and top1(row, p, f) <= top1(pixels, p, f)
    ]
    verdicts = [
        "above raw pixels on every protocol"
        if not below
        else "NOT above raw pixels on: " + ", ".join(below)
    ]
    for protocol in ("linear_few", "fine_tune"):
        value, base = top1(row, protocol, "1%"), top1(pixels, protocol, "1%")
        label = "1% linear" if protocol == "linear_few" else "1% fine-tune"
        if value is None or base is None:
            verdicts.append(f"{label} not run")
            continue
        verdicts.append(
            f"{label} {percent(value)}% {'meets' if value >= base + 0.05 else 'MISSES'} "
            f"raw pixels + 5 ({percent(base + 0.05)}%)"
        )
    return verdicts


def _vit_checks(name, row, results):
    """The ViT targets: pixels + 5 on the named protocols; MAE's above random init too."""
    verdicts = []
    for protocol, fraction in VIT_TARGETS.get(name, []):
        value = top1(row, protocol, fraction)
        base, random = (
            top1(results["pixels"], protocol, fraction),
            top1(results["random"], protocol, fraction),
        )
        if None in (value, base):
            continue
        label = f"{fraction or ''} {protocol}".strip()
        verdicts.append(
            f"{label} {percent(value)}% {'meets' if value >= base + 0.05 else 'MISSES'} raw "
            f"pixels + 5 ({percent(base + 0.05)}%)"
        )
        if name == "mae" and random is not None:
            above = "above" if value > random else "NOT above"
            verdicts.append(f"{label} {above} the same ViT from random init ({percent(random)}%)")
    return verdicts


def checks(results, methods, encoder="recipe"):
    """The issue's targets for each of `methods`, each with its number."""
    lines, pixels = [], results.get("pixels")
    for name in methods:
        row = results.get(name)
        if not row:
            continue
        verdicts = []
        for protocol, threshold in TARGETS.get(name, {}).items():
            value = top1(row, protocol)
            verdicts.append(
                f"{protocol} {percent(value)}% {'meets' if value >= threshold else 'MISSES'} "
                f"the {100 * threshold:.0f}% target ({100 * (value - threshold):+.1f})"
            )
        if name in SELF_SUPERVISED:
            verdicts += _against_pixels(row, pixels)
        if encoder == "vit" or name == "mae":
            verdicts += _vit_checks(name, row, results)
        if verdicts:
            lines.append(f"- {NAMES[name]}: " + "; ".join(verdicts) + ".")
    return lines


def output_suffix(methods, tag, default_methods):
    """`-<tag>`: `tag`, or for other than the default methods the methods joined by '-'."""
    if tag is None:
        tag = "" if list(methods) == list(default_methods) else "-".join(methods)
    return f"-{tag}" if tag else ""


def speed_ratios(results):
    """Each pretrained method's train images/s over SimCLR's in the same run (None: no SimCLR)."""
    simclr = results.get("simclr", {}).get("images_per_second")
    return {
        name: row["images_per_second"] / simclr if simclr else None
        for name, row in results.items()
        if row.get("images_per_second")
    }


def table(results, methods):
    """The Markdown table: a row per baseline and method."""
    ratios = speed_ratios(results)
    header = ["Encoder", *[label for _, _, label in PROTOCOLS], "Linear top-5"]
    header += ["Pretrain (s)", "Epochs", "Train images/s", "Images/s vs SimCLR"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in ["pixels", "random", *methods, "supervised"]:
        row = results.get(name, {})
        if not row.get("knn"):
            lines.append(f"| {NAMES[name]} | not run |" + " |" * (len(header) - 2))
            continue
        cells = [NAMES[name], *[percent(top1(row, p, f)) for p, f, _ in PROTOCOLS]]
        cells.append(percent(row["linear_probe"]["top5"]))
        pretrain = row.get("pretrain_seconds")
        ratio = ratios.get(name)
        cells += (
            ["—", "—", "—", "—"]
            if pretrain is None
            else [
                f"{pretrain:.0f}",
                f"{row['pretrain_epochs']:.2f}",
                f"{row['images_per_second']:.0f}",
                "—" if ratio is None else f"{ratio:.2f}",
            ]
        )
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def command_line(run):
    """The command that reproduces the run."""
    command = f"python benchmarks/quality.py --budget={run['budget']}"
    if list(run["methods"]) != list(run["default_methods"]):
        command += f" --methods={','.join(run['methods'])}"
    if run["tag"] is not None:
        command += f" --tag={run['tag']}"
    if not run["fine_tune"]:
        command += " --fine_tune=false"
    if run.get("encoder", "recipe") != "recipe":
        command += f" --encoder={run['encoder']}"
    if run.get("baseline_recipe", "simclr") != "simclr":
        command += f" --baseline_recipe={run['baseline_recipe']}"
    if run["precision_flag"] != "auto":
        command += f" --precision={run['precision_flag']}"
    return command


def _protocols_text(budget):
    return (
        f"Pretraining on {budget['train_examples']} train images, evaluation on "
        f"{budget['test_examples']} test images. kNN: k=200, T=0.1, train features as "
        f"memory. Linear: {budget['probe_epochs']} epochs of Adam on standardised frozen "
        "features; Linear (sklearn): L-BFGS logistic regression, C=0.1, at most "
        f"{budget['sklearn_iterations']} iterations, same features. Linear 1%/10%: the same "
        "classifier on a class-balanced 1%/10% of the labels (100/50 epochs). Fine-tune "
        f"1%/10%: SimCLR's protocol on the same subsets, epochs {budget['fine_tune_epochs']}. "
        "Raw pixels' fine-tuning trains a linear classifier on cropped and flipped pixels. "
        "Accuracies in %. Train images/s: source images per second after the first chunk "
        "(which traces the step); the self-supervised methods make two views of each. "
        "Images/s vs SimCLR: that over SimCLR's in this run (same encoder and batch)."
    )


def markdown(results, run, env, base):
    """The Markdown report's lines."""
    budget, methods, load = run["budget_values"], run["methods"], run["load_average"]
    probe = run["precision_probe"]
    recipes = [
        f"- {NAMES[name]}: `{json.dumps(results[name]['config'])}`"
        for name in [*methods, "supervised"]
        if results.get(name, {}).get("config")
    ]
    return [
        f"# Representation quality on Fashion-MNIST (budget `{run['budget']}`)",
        "",
        f"Produced by `{command_line(run)}` in {run['wall_seconds'] / 60:.1f} "
        f"minutes on {env['cpu']} ({env['cpu_cores_usable']} usable cores, accelerators: "
        f"{env['accelerators'] or 'none'}; load average {load[0][0]:.1f} before, "
        f"{load[1][0]:.1f} after). TensorFlow {env['tensorflow']}, "
        f"Keras {env['keras']}, keras_siamese {env['keras_siamese']}. Training precision: "
        f"{run['precision']}" + (f" (probe, s/step: {json.dumps(probe)})" if probe else "") + ".",
        "",
        _protocols_text(budget),
        "",
        *table(results, methods),
        "",
        "The self-supervised methods never see a label while pretraining; the triplet Siamese "
        "network (class-balanced P x K batches, after its recipe's SimCLR pretraining) and the "
        "supervised baseline train on the labels. Random init and supervised use the "
        f"{run.get('baseline_recipe', 'simclr')} recipe's encoder"
        + (
            " (its ViT recipe; every row's encoder is its method's ViT)"
            if run.get("encoder") == "vit"
            else ""
        )
        + ". Recipes (`keras_siamese.recipes`: `ks.recipes.get(recipe).replace(epochs=...)`"
        ", the budget's epochs; the supervised baseline is SimCLR's recipe with Adam):",
        *recipes,
        "",
        "Targets:",
        *checks(results, methods, run.get("encoder", "recipe")),
        "",
        f"kNN accuracy during pretraining: `{os.path.basename(base)}-knn.png` (memory "
        f"{budget['curve_memory']} train images, {budget['curve_queries']} test queries).",
    ]


def write_outputs(results, curves, run):
    """Writes `quality-<budget><suffix>.json`, `.md` and `-knn.png`; prints the Markdown."""
    suffix = output_suffix(run["methods"], run["tag"], run["default_methods"])
    base = os.path.join(run["output_dir"], f"quality-{run['budget']}{suffix}")
    env = environment()
    payload = {
        "budget": run["budget"],
        "config": {k: str(v) for k, v in run["budget_values"].items()},
        "seed": run["seed"],
        "precision": run["precision"],
        "precision_probe_seconds": run["precision_probe"],
        "wall_seconds": run["wall_seconds"],
        "load_average_before": run["load_average"][0],
        "load_average_after": run["load_average"][1],
        "environment": env,
        "results": results,
        "images_per_second_vs_simclr": speed_ratios(results),
        "knn_curves": curves,
    }
    _write(base + ".json", json.dumps(payload, indent=2, default=float))
    text = markdown(results, run, env, base)
    _write(base + ".md", "\n".join(text) + "\n")
    plot_curves(curves, base + "-knn.png", run["budget"])
    print("\n".join(text))


def _write(path, text):
    """`text` to `path` through a temporary file renamed over it (a kill leaves the old one)."""
    temporary = f"{path}.tmp"
    with open(temporary, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def plot_curves(curves, path, budget):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6, 4), dpi=100)
    for name, points in curves.items():
        epochs, accuracies = zip(*points, strict=True)
        axes.plot(epochs, [100 * a for a in accuracies], marker="o", label=NAMES[name])
    axes.set_xlabel("pretraining epochs (passes over the train split)")
    axes.set_ylabel("kNN top-1 on a test subset (%)")
    axes.set_title(f"Fashion-MNIST, budget {budget}")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    temporary = f"{path}.tmp.png"
    figure.savefig(temporary)
    pyplot.close(figure)
    os.replace(temporary, path)
