"""Nearest neighbours of an image file, answered by an exported model.

Loads a SavedModel written by `export_for_serving` (by `python -m keras_siamese export` or
by one of the other examples) with TensorFlow only, embeds a gallery of Fashion-MNIST
images with its `serving_default` signature (uint8 pixels), embeds the query file with its
`embed_bytes` signature (the PNG/JPEG bytes are decoded, converted and resized inside the
SavedModel, as TensorFlow Serving would do them) and prints the gallery images most similar
to the query. Embeddings are L2-normalised, so a dot product is their cosine similarity.
keras_siamese is used here only to read the gallery; the model itself needs nothing of ours.

Run, after `python examples/simclr_fashion_mnist.py`:
`python examples/query_saved_model.py --export_dir=saved_models/simclr_fashion_mnist
--image=my_shoe.png`. Without `--image`, the first Fashion-MNIST test image is written to a
PNG file and queried. Runs in seconds.
"""

import os
import sys
import tempfile

from absl import app, flags

flags.DEFINE_string(
    "export_dir", "saved_models/simclr_fashion_mnist", "An export (its highest version is used)."
)
flags.DEFINE_string(
    "image", "", "The query image file (PNG, JPEG, BMP or GIF); empty: a test image."
)
flags.DEFINE_string("gallery", "fashion_mnist", "Dataset the neighbours are searched in.")
flags.DEFINE_string("gallery_split", "train[:10000]", "Split of the gallery.")
flags.DEFINE_integer("k", 8, "Neighbours to print.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import numpy as np
    import tensorflow as tf

    import keras_siamese as ks

    # ---- the exported model: TensorFlow only (tf.saved_model.load).
    try:
        model = ks.export.load_for_inference(FLAGS.export_dir)
    except (ValueError, OSError) as error:
        sys.exit(f"error: no export to load. {error}")
    height, width, channels = model.image_shape
    print(f"Loaded {model.path}: images {model.image_shape} -> {model.embedding_dims}-d embeddings")

    # ---- the gallery, at the model's image size, embedded with `serving_default`.
    gallery = ks.datasets.load(
        FLAGS.gallery, FLAGS.gallery_split, image_size=(height, width), channels=channels
    )
    batches = list(gallery.batch(4096).as_numpy_iterator())
    images = np.concatenate([batch_images for batch_images, _ in batches])
    labels = np.concatenate([batch_labels for _, batch_labels in batches])
    gallery_embeddings = model.embed(images)
    names = (
        ks.datasets.FASHION_MNIST_CLASSES
        if FLAGS.gallery == "fashion_mnist"
        else [str(label) for label in range(int(labels.max()) + 1)]
    )

    # ---- the query file, decoded inside the SavedModel by `embed_bytes`.
    image_path = FLAGS.image
    if not image_path:
        test_image, test_label = next(iter(ks.datasets.load("fashion_mnist", "test[:1]")))
        image_path = os.path.join(tempfile.mkdtemp(), "query.png")
        tf.io.write_file(image_path, tf.io.encode_png(test_image))
        print(f"No --image: querying test image 0 ({names[int(test_label)]}), {image_path}")
    if not os.path.isfile(image_path):
        sys.exit(f"error: --image={image_path} is not a file.")
    with open(image_path, "rb") as file:
        query_embedding = model.embed_bytes([file.read()])[0]

    # ---- cosine similarity to every gallery image, most similar first.
    scores = gallery_embeddings @ query_embedding
    nearest = np.argsort(-scores, kind="stable")[: FLAGS.k]
    print(f"The {len(nearest)} nearest of {len(scores)} {FLAGS.gallery} {FLAGS.gallery_split}:")
    for rank, index in enumerate(nearest, start=1):
        name = names[int(labels[index])]
        print(f"{rank:>3}. index {index:<6} {name:<12} cosine {scores[index]:.4f}")


if __name__ == "__main__":
    app.run(main)
