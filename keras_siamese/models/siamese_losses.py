"""The losses a `SiameseNetwork` trains with: names, objects, and the batches each needs."""

from __future__ import annotations

from keras_siamese import losses, validation
from keras_siamese.loss_names import LOSS_NAMES, PAIR_LOSS_NAMES, PROXY_LOSS_NAMES
from keras_siamese.losses.metric_loss import MetricLoss
from keras_siamese.models import siamese_inputs as inputs


def _by_name(name: str, num_classes: int | None):
    if name == "contrastive":
        return losses.ContrastiveMargin()
    if name == "triplet":
        return losses.TripletLoss()
    if name in PAIR_LOSS_NAMES:
        return getattr(losses, PAIR_LOSS_NAMES[name])()
    if num_classes is None:
        raise ValueError(
            f"The loss {name!r} learns one weight vector per class: pass the number of classes "
            f"of the training labels, SiameseNetwork(..., num_classes=N). Received: "
            f"loss={name!r}, num_classes=None"
        )
    return getattr(losses, PROXY_LOSS_NAMES[name])(num_classes=num_classes)


def resolve_loss(loss, num_classes: int | None = None):
    """The loss object of `SiameseNetwork(loss=...)`: a name, a loss object or its function.

    Args:
        loss: one of `LOSS_NAMES`, a `ContrastiveMargin`, `TripletLoss` or any
            `keras_siamese.losses.MetricLoss` (CrossBatchMemory included), or the functions
            `contrastive_margin` / `triplet_loss` (their defaults).
        num_classes: classes of the labels, needed by a proxy loss given by name.

    Returns:
        The loss object.

    Raises:
        ValueError: for an unknown name, a proxy loss name without `num_classes`, or a
            `num_classes` that disagrees with the loss object's.
        TypeError: for another type.
    """
    if num_classes is not None:
        num_classes = validation.check_integer("num_classes", num_classes, minimum=2)
    if isinstance(loss, str):
        if loss not in LOSS_NAMES:
            raise ValueError(
                f"Argument `loss` must be one of {LOSS_NAMES} or a loss of "
                f"keras_siamese.losses. Received: loss={loss!r}"
            )
        return _by_name(loss, num_classes)
    if loss is losses.contrastive_margin:
        return losses.ContrastiveMargin()
    if loss is losses.triplet_loss:
        return losses.TripletLoss()
    if isinstance(loss, (losses.ContrastiveMargin, losses.TripletLoss, MetricLoss)):
        own = getattr(loss, "num_classes", None)
        if num_classes is not None and own is not None and own != num_classes:
            raise ValueError(
                f"Argument `num_classes` ({num_classes}) disagrees with the loss' num_classes "
                f"({own}). Received: num_classes={num_classes}, loss={loss!r}"
            )
        return loss
    raise TypeError(
        f"Argument `loss` must be one of {LOSS_NAMES} or a loss object of "
        "keras_siamese.losses (ContrastiveMargin, TripletLoss, MultiSimilarityLoss, "
        f"ArcFaceLoss, CrossBatchMemory, ...). Received: loss={loss!r} of type "
        f"{type(loss).__name__}"
    )


def mode_of(loss_fn) -> str:
    """The batches the loss trains on: `siamese_inputs.PAIRS`, `TRIPLETS`, `METRIC`, `PROXIES`."""
    if isinstance(loss_fn, losses.ContrastiveMargin):
        return inputs.PAIRS
    if isinstance(loss_fn, losses.TripletLoss):
        return inputs.TRIPLETS
    return inputs.PROXIES if loss_fn.uses_proxies else inputs.METRIC


def inner_loss(loss_fn):
    """The loss inside a `CrossBatchMemory`, else the loss itself."""
    return loss_fn.loss if isinstance(loss_fn, losses.CrossBatchMemory) else loss_fn
