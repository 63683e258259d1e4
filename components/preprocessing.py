"""Transform: decodes each image once into a compact resized PNG and learns the train-split mean.

`preprocessing_fn` is what the TFX Transform runs (the pipeline names it by dotted path).
"""

from typing import Any, Dict, Optional

import tensorflow as tf
import tensorflow_transform as tft

from components import features
from components import image_ops
from components.image_spec import ImageSpec

# zlib level of the stored PNGs: the pixels are the same at any level. Level 2 encodes a 224 px
# X-ray in 1.4 ms (one core) into 21 KB; the default (6) takes 10 ms, more than the resize, for
# 19 KB. Decoding either in the training input takes 0.7 ms.
PNG_COMPRESSION = 2


def preprocessing_fn(
  inputs: Dict[str, tf.Tensor], custom_config: Optional[Dict[str, Any]] = None
) -> Dict[str, tf.Tensor]:
  """Raw `image`, `intensity_mean` and `label` ([batch, 1] each) -> the Transform outputs.

  custom_config: the ImageSpec's keys (components.image_spec; `normalization` is the model's).

  Outputs:
    pixels_xf: string [batch], PNG (zlib level PNG_COMPRESSION) of the decoded, resized uint8
      image (size x size x channels).
    pixel_mean_xf: float32 [batch, channels], the train split's mean pixel / 255 on every
      channel: the mean of the ingestion's `intensity_mean` of each analyzed (train) image, the
      same vector on every example.
    label_xf: int64 [batch], the label unchanged (a scalar per example).

  Why the ingestion's means: the analysis then reads a float per image instead of decoding every
  image a second time (decoding is most of the Transform's work: 1,200 records of 1024 px PNGs on 2
  cores, 82 instead of 54 images/s, benchmarks/bench_input.py). The difference from Keras
  ImageDataGenerator.fit's `np.mean(x, axis=(0, 1, 2))` over the resized pixels is documented and
  tested (tests/test_preprocessing.py): the means are of the stored pixels before the resize,
  a hundredth of a grey level away on the tests' images; a colour image counts by its luminance
  (ITU-R 601), the same on every channel, where Keras would centre each channel by its own mean
  (X-rays stored as RGB have equal channels, hence equal means).
  """
  image = ImageSpec.from_config(custom_config)
  encoded = tf.reshape(inputs[features.IMAGE_KEY], [-1])
  pixel_mean = tft.mean(tf.reshape(inputs[features.INTENSITY_MEAN_KEY], [-1]))
  return {
    features.PIXELS_XF: stored_pngs(encoded, image),
    # Shaped by the images alone, so that serving needs no intensity_mean.
    features.PIXEL_MEAN_XF: tf.broadcast_to(pixel_mean, [tf.size(encoded), image.channels]),
    features.LABEL_XF: tf.reshape(inputs[features.LABEL_KEY], [-1]),
  }


def stored_pngs(encoded: tf.Tensor, image: ImageSpec) -> tf.Tensor:
  """Encoded images string [batch] -> `pixels_xf`: each decoded, resized (image_ops.decode_resized)
  and stored as a PNG, string [batch]."""
  pixels = tf.map_fn(
    lambda one: image_ops.decode_resized(one, image.size, image.channels),
    encoded,
    fn_output_signature=tf.TensorSpec([image.size, image.size, image.channels], tf.uint8),
  )
  return tf.map_fn(
    lambda image_pixels: tf.io.encode_png(image_pixels, compression=PNG_COMPRESSION),
    pixels,
    fn_output_signature=tf.string,
  )
