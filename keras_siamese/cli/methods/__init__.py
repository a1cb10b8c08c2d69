"""The methods of `train --method=...`: one file each, registered here one line per method.

`methods/<method>.py` holds a method's flags (a table; each sets one field of the method's
recipe, its default read from `keras_siamese.recipes.get(<method>)`) and its `Method` row.
`train`, its flags and its help read only `METHODS`, so adding a method to the command line
is one new file and one line below. No TensorFlow at import time (the rows answer `--help`).
"""

from __future__ import annotations

from absl import app

import keras_siamese as ks
from keras_siamese.cli.methods import (
    barlow_twins,
    byol,
    dino,
    mae,
    moco,
    nnclr,
    siamese,
    simclr,
    simsiam,
    swav,
    vicreg,
)
from keras_siamese.cli.methods.method import AUTO, Method, MethodFlag

METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        simclr.METHOD,
        simsiam.METHOD,
        siamese.CONTRASTIVE_METHOD,
        siamese.TRIPLET_METHOD,
        siamese.METRIC_METHOD,
        barlow_twins.METHOD,
        vicreg.METHOD,
        swav.METHOD,
        byol.METHOD,
        moco.METHOD,
        nnclr.METHOD,
        dino.METHOD,
        mae.METHOD,
    )
}


def method_flags() -> dict[str, tuple[MethodFlag, tuple[str, ...]]]:
    """Every method-specific flag once: `{name: (flag, names of the methods that read it)}`.

    Raises:
        ValueError: if two rows define different flags under one name.
    """
    found: dict[str, tuple[MethodFlag, tuple[str, ...]]] = {}
    for method in METHODS.values():
        for flag in method.flags:
            known, readers = found.get(flag.name, (flag, ()))
            if known != flag:
                raise ValueError(
                    f"Methods {readers} and {method.name!r} define different flags named "
                    f"{flag.name!r}: share one `MethodFlag`. Received: {known} and {flag}"
                )
            found[flag.name] = (flag, (*readers, method.name))
    return found


def check_available(name: str) -> Method:
    """Returns the method, or raises UsageError if this installation lacks its model class.

    Reads `keras_siamese.__all__`, so it answers without importing TensorFlow.
    """
    method = METHODS[name]
    if method.model_class not in ks.__all__:
        available = [m.name for m in METHODS.values() if m.model_class in ks.__all__]
        raise app.UsageError(
            f"--method={name} needs keras_siamese.{method.model_class}, which this version of "
            f"keras_siamese does not have. Available: {', '.join(available)}. "
            f"Received: --method={name}"
        )
    return method


__all__ = ["AUTO", "METHODS", "Method", "MethodFlag", "check_available", "method_flags"]
