"""Few-label fine-tuning: SimCLR's semi-supervised protocol on a class-balanced label subset."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_siamese import augment, validation
from keras_siamese.datasets.in_memory import shuffled_batches
from keras_siamese.evaluation.features import (
    Data,
    _check_input_scale,
    _is_representation_model,
    check_data,
    extract_features,
)
from keras_siamese.evaluation.linear_probe import (
    _check_learning_rate,
    _check_seed,
    _epoch_progress,
    top_k_accuracies,
)
from keras_siamese.evaluation.subsets import _check_fraction, class_balanced_subset


def _as_arrays(data: Data, name: str) -> tuple[np.ndarray, np.ndarray]:
    """`(images, labels)` numpy arrays of a tuple or a (batched or unbatched) dataset."""
    check_data(data, name)
    if not isinstance(data, tf.data.Dataset):
        return np.asarray(data[0]), np.asarray(data[1])
    pairs = list(data.as_numpy_iterator())
    if not pairs:
        raise ValueError(f"Argument `{name}` holds no examples. Received: an empty dataset")
    images, labels = zip(*pairs, strict=True)
    join = np.stack if np.ndim(labels[0]) == 0 else np.concatenate
    return join(images), join(labels)


def _trainable_network(model: keras.Model, input_scale: float | None) -> keras.Model:
    """A fresh copy of the network behind `model`: images as stored ([0, 255]) -> features."""
    if _is_representation_model(model):
        network = model.embedding_model()
    elif isinstance(model, keras.Model):
        network = model
    else:
        raise TypeError(
            "Argument `encoder` must be a keras_siamese model (SimCLR, SimSiam, ...) or a "
            "keras.Model from images to features. "
            f"Received: encoder of type {type(model).__name__}"
        )
    scale = _check_input_scale(model, input_scale)
    try:
        input_shape = tuple(network.input_shape)
        output_shape = tuple(network.output_shape)
    except (AttributeError, ValueError) as error:
        raise ValueError(
            "Argument `encoder` must be a built model with one input and one output "
            f"(e.g. a functional model). Received: encoder={network.name!r}"
        ) from error
    if len(input_shape) != 4 or any(size is None for size in input_shape[1:]):
        raise ValueError(
            "Argument `encoder` must take images of a fixed shape (batch, height, width, "
            f"channels). Received: encoder.input_shape={input_shape}"
        )
    if len(output_shape) != 2:
        raise ValueError(
            "Argument `encoder` must return rank-2 features (batch, dims). "
            f"Received: encoder.output_shape={output_shape}"
        )
    # A copy, so fine-tuning never changes the caller's model.
    copy = keras.models.clone_model(network)
    copy.set_weights(network.get_weights())
    if scale is None:
        return copy
    images = keras.Input(input_shape[1:], name="images")
    scaled = keras.layers.Rescaling(scale, name="input_scale")(images)
    return keras.Model(images, copy(scaled), name=f"{copy.name}_scaled")


class _EpochBar(keras.callbacks.Callback):
    """Advances a tqdm bar (or any iterator) once per epoch."""

    def __init__(self, bar):
        super().__init__()
        self.bar = bar

    def on_epoch_end(self, epoch, logs=None):
        self.bar.update(1)
        if logs and "loss" in logs:
            self.bar.set_postfix(loss=f"{logs['loss']:.3f}")

    def on_train_end(self, logs=None):
        self.bar.close()


def _check_augmenter(augmenter) -> None:
    if augmenter is not None and not isinstance(augmenter, keras.layers.Layer):
        raise TypeError(
            "Argument `augmenter` must be a keras.layers.Layer or None. "
            f"Received: augmenter={augmenter!r}"
        )


def _check_labels(labels: np.ndarray, num_classes: int | None) -> int:
    """Checks the training labels (integers in `[0, num_classes)`); returns `num_classes`."""
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"Argument `train` must hold integer labels. Received: labels.dtype={labels.dtype}"
        )
    if num_classes is None:
        num_classes = int(labels.max()) + 1
    validation.check_integer("num_classes", num_classes)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            "Argument `train` must have labels in [0, num_classes). "
            f"Received: labels in [{labels.min()}, {labels.max()}], num_classes={num_classes}"
        )
    return num_classes


def _fine_tune_models(
    network: keras.Model,
    augmenter: keras.layers.Layer | None,
    crop_area: tuple[float, float],
    num_classes: int,
    seed: int,
) -> tuple[keras.Model, keras.Model]:
    """`(model, trainer)`: the network with a linear head, and the same behind the augmenter.

    Without an `augmenter` the views are SimCLR's crops and flips alone (no colour).
    """
    image_shape = tuple(network.input_shape[1:])
    if augmenter is None:
        augmenter = augment.SimCLRAugmenter(
            image_shape[:2],
            channels=image_shape[-1],
            strength=0.0,
            crop_area=crop_area,
            grayscale_probability=0.0,
            seed=seed,
            name="crop_and_flip",
        )
    inputs = keras.Input(image_shape, name="images")
    head = keras.layers.Dense(
        num_classes,
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.01, seed=seed),
        name="logits",
    )
    model = keras.Model(inputs, head(network(inputs)), name="fine_tuned")
    views = keras.layers.Rescaling(255.0, name="to_255")(augmenter(inputs))
    trainer = keras.Model(inputs, model(views), name="fine_tune_trainer")
    return model, trainer


OPTIMIZERS = ("auto", "sgd", "adamw")


def uses_vision_transformer(network: keras.Model) -> bool:
    """Whether `network` holds a `keras_siamese.encoders.VisionTransformer` (at any depth)."""
    from keras_siamese.encoders.vision_transformer import VisionTransformer

    return any(isinstance(layer, VisionTransformer) for layer in network._flatten_layers())


def _check_fraction_and_epochs(label_fraction, epochs, batch_size) -> tuple[float, int]:
    """The checked fraction and epochs (60 for 1% of the labels or fewer, else 30)."""
    label_fraction = _check_fraction(label_fraction)
    if epochs is None:
        epochs = 60 if label_fraction <= 0.01 else 30
    validation.check_integer("epochs", epochs)
    validation.check_integer("batch_size", batch_size)
    return label_fraction, epochs


def _resolve_optimizer(optimizer: str, network: keras.Model) -> str:
    """`optimizer`, checked; "auto": AdamW for a Vision Transformer, else SGD."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(
            f"Argument `optimizer` must be one of {OPTIMIZERS}. Received: optimizer={optimizer!r}"
        )
    if optimizer == "auto":
        return "adamw" if uses_vision_transformer(network) else "sgd"
    return optimizer


def _optimizer(name: str, schedule, momentum: float) -> keras.optimizers.Optimizer:
    if name == "adamw":  # MAE's fine-tuning (He et al. 2022, appendix A.2): AdamW, decay 0.05
        return keras.optimizers.AdamW(schedule, weight_decay=0.05)
    return keras.optimizers.SGD(schedule, momentum=momentum, nesterov=True)


def _fit(
    trainer: keras.Model,
    examples: tuple[np.ndarray, np.ndarray],
    batch_size: int,
    learning_rate: float,
    momentum: float,
    epochs: int,
    seed: int,
    *,
    progress: bool,
    description: str,
    optimizer: str = "sgd",
) -> None:
    """Trains `trainer` on the labelled `(images, labels)`: `optimizer`, cosine decay."""
    images, labels = examples
    # Epoch n's order depends on (seed, n) alone, not on TensorFlow's global seed.
    dataset = shuffled_batches(
        (images.astype(np.float32), labels.astype(np.int64)), batch_size, seed=seed, repeat=False
    )
    steps = len(images) // batch_size
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=epochs * steps)
    trainer.compile(
        optimizer=_optimizer(optimizer, schedule, momentum),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    bar = _epoch_progress(epochs, progress, description)
    callbacks = [_EpochBar(bar)] if progress else []
    trainer.fit(dataset, epochs=epochs, callbacks=callbacks, verbose=0, shuffle=False)


def fine_tune(
    encoder: keras.Model,
    train: Data,
    test: Data,
    label_fraction: float = 0.1,
    epochs: int | None = None,
    batch_size: int = 256,
    learning_rate: float | None = None,
    momentum: float = 0.9,
    crop_area: tuple[float, float] = (0.25, 1.0),
    augmenter: keras.layers.Layer | None = None,
    num_classes: int | None = None,
    seed: int = 0,
    progress: bool = True,
    *,
    input_scale: float | None = None,
    optimizer: str = "auto",
) -> dict:
    """Fine-tunes a copy of the encoder with a linear head on a few labels; returns test accuracy.

    The semi-supervised protocol of SimCLR (Chen et al. 2020, section 4.2 and appendix
    B.5): a class-balanced `label_fraction` of the training labels (1% or 10%) is drawn
    with `class_balanced_subset(labels, label_fraction, seed)`; the whole network plus a
    linear head is trained with Nesterov momentum, learning rate `0.05 * batch_size / 256`
    (the batch size actually used: `batch_size` clamped to the subset size) decayed by a
    cosine without warmup, no weight decay, and only random cropping and
    horizontal flips as augmentation, "for 60 epochs with 1% labels and 30 epochs with 10%".
    A Vision Transformer is fine-tuned as ViTs are (`optimizer="auto"`): MAE's protocol
    (He et al. 2022, appendix A.2), AdamW with weight decay 0.05 at `1e-3 * B / 256`, same
    schedule, crops and flips (without its layer-wise decay, mixup and label smoothing);
    Nesterov SGD at 0.05 diverged on the package's ViT (10% accuracy, random init and
    pretrained alike).
    The crops keep `crop_area` of the image (the paper's 0.08-1 is for 224-px ImageNet
    crops; a 28-px garment keeps its class only with larger crops). BatchNorm runs in
    training mode. The caller's encoder is never changed: the network is copied first
    (`keras.models.clone_model` and `set_weights`).

    For a keras_siamese model (SimCLR, BYOL, ..., SiameseNetwork) the network is its
    `embedding_model()` (the encoder with the /255 rescale, no heads). A plain `keras.Model`
    returning `(batch, dims)` features either starts with a `Rescaling` layer (e.g. an
    `embedding_model()`) or needs `input_scale`, as in `extract_features`: `1 / 255` for an
    encoder taking [0, 1] such as `model.encoder` (a `Rescaling` is put in front of the copy).

    Args:
        encoder: a keras_siamese model or a `keras.Model` from images to features.
        train: `(images, labels)` numpy arrays or a dataset of them (read into memory).
        test: the same for the evaluation split.
        label_fraction: fraction of each class's training labels used, in (0, 1].
        epochs: passes over the labelled subset; 60 for `label_fraction <= 0.01`, else 30.
        batch_size: images per step (clamped to the subset size).
        learning_rate: peak learning rate; `0.05 * B / 256` when None, with `B` the batch
            size used (`min(batch_size, labelled examples)`).
        momentum: Nesterov momentum.
        crop_area: `(min, max)` area fraction of the random crops.
        augmenter: replaces the crop-and-flip augmentation: a layer from [0, 255] images to
            float views in [0, 1] (e.g. a `SimCLRAugmenter`), used only in training.
        num_classes: number of classes; the largest label + 1 when None.
        seed: seed of the subset, the head's initialisation, the shuffling and the crops.
        progress: show progress bars (epochs, test features).
        optimizer: `"sgd"` (SimCLR's Nesterov momentum), `"adamw"` (MAE's) or `"auto"`:
            AdamW for a network with a `VisionTransformer`, else SGD.
        input_scale: the factor the stored images are multiplied by before a plain model
            that does not start with `Rescaling` (`1 / 255` for an encoder taking [0, 1],
            `1.0` for a model taking the images as stored); None for a keras_siamese model.

    Returns:
        `{"top1": float, "top5": float, "labelled_examples": int, "batch_size": int,
        "learning_rate": float, "optimizer": str, "model": keras.Model}`: the batch size,
        peak learning rate and optimizer used, and the model, which maps images like
        `train`'s to logits.

    Raises:
        TypeError: if `encoder` is not a model or an argument has the wrong type.
        ValueError: if `label_fraction` is not in (0, 1], the encoder's input or output
            has the wrong rank, `input_scale` is missing for a plain model without
            `Rescaling` or given for a keras_siamese model, labels fall outside
            `[0, num_classes)`, or a count or rate is not positive.

    Example:
        >>> model = keras_siamese.SimCLR(keras_siamese.encoders.resnet(10, (28, 28, 1), width=8))
        >>> result = fine_tune(model, (train_images, train_labels), (test_images, test_labels),
        ...                    label_fraction=0.01, epochs=5)
        >>> result["top1"]
    """
    label_fraction, epochs = _check_fraction_and_epochs(label_fraction, epochs, batch_size)
    if learning_rate is not None:
        learning_rate = _check_learning_rate(learning_rate)
    momentum = validation.check_number("momentum", momentum, 0.0, 1.0, include_maximum=False)
    seed = _check_seed(seed)
    _check_augmenter(augmenter)
    check_data(test, "test")
    network = _trainable_network(encoder, input_scale)
    optimizer = _resolve_optimizer(optimizer, network)
    images, labels = _as_arrays(train, "train")
    num_classes = _check_labels(labels, num_classes)
    subset = class_balanced_subset(labels, label_fraction, seed=seed)
    images, labels = images[subset], labels[subset]
    model, trainer = _fine_tune_models(network, augmenter, crop_area, num_classes, seed)
    # The rate follows the batch actually used (a small subset clamps it), as in the paper.
    batch_size = min(batch_size, len(images))
    if learning_rate is None:
        learning_rate = (1e-3 if optimizer == "adamw" else 0.05) * batch_size / 256
    _fit(
        trainer,
        (images, labels),
        batch_size,
        learning_rate,
        momentum,
        epochs,
        seed,
        progress=progress,
        description=f"fine-tune {label_fraction:.0%}",
        optimizer=optimizer,
    )
    logits, test_labels = extract_features(
        model, test, batch_size=256, progress=progress, input_scale=1.0
    )
    return {
        **top_k_accuracies(logits, test_labels),
        "labelled_examples": int(len(images)),
        "batch_size": int(batch_size),
        "learning_rate": float(learning_rate),
        "optimizer": optimizer,
        "model": model,
    }
