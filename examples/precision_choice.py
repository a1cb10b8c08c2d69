"""`training_precision`: the `--precision` flag of the Fashion-MNIST examples, resolved."""


def training_precision(flag, build_model, batch):
    """`flag` ("float32", "bfloat16") as given, or for "auto" the faster here, timed.

    The policy is set before returning, so build the real model afterwards.

    Args:
        flag: "auto", "float32" or "bfloat16".
        build_model: `() -> compiled keras.Model` (`ks.distribute.fastest_precision` builds
            one per candidate precision and times its training step on `batch`).
        batch: one training batch.

    Returns:
        The precision set: "float32" or "bfloat16".
    """
    import keras_siamese as ks

    precision = flag
    if flag == "auto":
        precision, seconds = ks.distribute.fastest_precision(build_model, batch)
        milliseconds = ", ".join(f"{name} {1000 * value:.0f}" for name, value in seconds.items())
        print(f"Precision probe, ms per step: {milliseconds} -> {precision}")
    ks.distribute.set_mixed_precision(precision)
    return precision
