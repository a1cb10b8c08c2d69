"""Sweeps ViT recipes on Fashion-MNIST: kNN and linear probe per variant, raw pixels first.

Each variant is a JSON object: `method` (a `ks.recipes` name), `epochs` (passes over the
60,000 train images, fractions allowed) and recipe fields to change on the method's ViT
recipe (`ks.recipes.get(method, encoder_type="vit", **fields)`); `fine_tune: true` adds the
1% and 10% fine-tuning protocol (MAE's). Every line is measured with `quality_eval`'s
protocols on the 10,000 test images (kNN k=200 T=0.1, 20-epoch linear probe, few-label
probes), the raw-pixel line first, the same way; the file is rewritten whole after each line.
The ViT recipes' values came from these lines; the table of record is `quality.py
--encoder=vit`'s.

    python benchmarks/vit_sweep.py '[{"method": "simclr", "epochs": 2, "vit_dim": 96}]' out.jsonl
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
from metric_learning_sweep import append_line  # noqa: E402
from quality_budgets import BUDGETS  # noqa: E402

import keras_siamese as ks  # noqa: E402

IMAGE_SHAPE = (28, 28, 1)


def evaluate(network, data, fine_tune):
    import quality_eval

    budget = BUDGETS["quick"]
    row = quality_eval.report(network, "variant", data, budget, seed=0, fine_tune=fine_tune)
    result = {
        "knn": row["knn"]["top1"],
        "linear": row["linear_probe"]["top1"],
        "linear_1%": row["few_label_linear"]["1%"]["top1"],
        "linear_10%": row["few_label_linear"]["10%"]["top1"],
    }
    for key, tuned in row["fine_tune"].items():
        result[f"fine_tune_{key}"] = tuned["top1"]
    return result


def train(variant, data):
    """The variant's model trained for its epochs; returns `(model, seconds)`."""
    import recipe_parts as parts

    fields = {k: v for k, v in variant.items() if k not in ("method", "epochs", "fine_tune")}
    recipe = ks.recipes.get(variant["method"], encoder_type="vit", **fields)
    images = data["train"][0]
    steps = max(1, round(variant["epochs"] * len(images) / recipe.batch_size))
    keras.utils.set_random_seed(0)
    model = recipe.build(IMAGE_SHAPE, total_steps=steps, seed=0)
    started = time.perf_counter()
    model.fit(
        parts.images_dataset(images, recipe.batch_size, 0),
        epochs=1,
        steps_per_epoch=steps,
        verbose=2,
    )
    return model, time.perf_counter() - started


def main(variants, output):
    import quality
    import quality_eval

    data = quality.load_data("quick")
    if not os.path.isfile(output):
        pixels = evaluate(quality_eval.pixels(), data, fine_tune=True)
        append_line(output, {"variant": "raw pixels", **pixels})
    for variant in variants:
        model, seconds = train(variant, data)
        result = evaluate(model, data, fine_tune=bool(variant.get("fine_tune")))
        append_line(output, {"variant": variant, "seconds": round(seconds), **result})


if __name__ == "__main__":
    main(json.loads(sys.argv[1]), sys.argv[2])
