"""Encoders: the ResNets of the SimCLR/SimSiam papers, pretrained-family backbones, adaptation.

An encoder is any `keras.Model` that maps float32 images in [0, 1] of a fixed shape
`(height, width, channels)` to a rank-2 representation `(batch, features)`. The models
divide the uint8 pixels by 255 before the encoder, so backbones that expect another range
(`keras.applications`, KerasHub) get their own preprocessing inside the encoder, as a
`PixelPreprocessing` layer, and every encoder here saves and reloads through `.keras`.

- `resnet(depth, input_shape, ...)`: ResNet-10/18/34/50 with the CIFAR or ImageNet stem,
  for any channel count.
- `from_keras_applications(name, input_shape, weights=None)`: any `keras.applications`
  model, with its family's `preprocess_input`.
- `from_keras_hub(backbone, image_converter)`: a KerasHub image backbone with its
  `ImageConverter`'s scale and offset.
- `vit(image_size, patch_size, dim, depth, heads, ...)`: a Vision Transformer (any channel
  count, learned or sine-cosine positions, class-token or mean pooling, any image size).
- `adapt_encoder(model)`: checks a user model and pools feature maps.
"""

from keras_siamese.encoders.adapt import adapt_encoder
from keras_siamese.encoders.applications import application_names, from_keras_applications
from keras_siamese.encoders.hub import from_keras_hub
from keras_siamese.encoders.patches import patchify, sincos_position_embedding, unpatchify
from keras_siamese.encoders.pixel_preprocessing import PixelPreprocessing
from keras_siamese.encoders.resnet import resnet
from keras_siamese.encoders.transformer_block import TransformerBlock
from keras_siamese.encoders.vision_transformer import VisionTransformer
from keras_siamese.encoders.vit import vision_transformer_of, vit

__all__ = [
    "PixelPreprocessing",
    "TransformerBlock",
    "VisionTransformer",
    "adapt_encoder",
    "application_names",
    "from_keras_applications",
    "from_keras_hub",
    "patchify",
    "resnet",
    "sincos_position_embedding",
    "unpatchify",
    "vision_transformer_of",
    "vit",
]
