"""Serving signatures: raw image bytes or raw tf.Examples in, through the Transform graph.

The Transform layer turns raw images into `pixels_xf` and `pixel_mean_xf` exactly as for the
materialized training examples, then image_ops.decode_pixels and image_ops.model_input build
the model input as the training input does, so training and serving share one graph.
"""

from typing import Callable, Dict

import tensorflow as tf
import tensorflow_transform as tft

from components import features
from components import image_ops
from components import labels
from components import model as model_lib
from components import ood
from components.image_spec import ImageSpec


def serving_model_input(tft_layer, image: ImageSpec, encoded_images: tf.Tensor) -> tf.Tensor:
  """Encoded images (string [N]) -> the model input, through the Transform layer `tft_layer` and
  the training input's decoding and normalization."""
  transformed = tft_layer({features.IMAGE_KEY: tf.reshape(encoded_images, [-1, 1])})
  pixels = tf.map_fn(
    lambda png: image_ops.decode_pixels(png, image.channels),
    transformed[features.PIXELS_XF],
    fn_output_signature=tf.TensorSpec([image.size, image.size, image.channels], tf.uint8),
  )
  return image_ops.model_input(pixels, transformed[features.PIXEL_MEAN_XF], image.normalization)


def make_serving_signatures(
  model: tf.keras.Model,
  tf_transform_output: tft.TFTransformOutput,
  image: ImageSpec,
  covid_threshold: float,
  detector: ood.Detector,
) -> Dict[str, Callable]:
  """Signatures for tf.saved_model.save(model, path, signatures=...).

  serving_default(image_bytes: string [None]) and serving_examples(examples: string [None],
  serialized raw tf.Examples; only `image` is read) -> probabilities float32 [None, 3],
  class_id int64 [None], class_name string [None], covid_positive bool [None]
  (P(COVID) > covid_threshold, compared in float64 as components.operating_point does),
  ood_score float32 [None] and in_distribution bool [None] (ood_score <= the detector's
  threshold, in float64), from the penultimate features and logits of the same forward pass.
  transform_features(examples: string [None]) -> the Transform outputs (pixels_xf,
  pixel_mean_xf, label_xf), for TFMA's preprocessing_function_names.
  """
  model.tft_layer = tf_transform_output.transform_features_layer()  # tracked, so it is exported
  raw_spec = tf_transform_output.raw_feature_spec()
  class_names = tf.constant(labels.CLASS_NAMES)
  threshold = tf.constant(covid_threshold, tf.float64)

  output_layer = model.get_layer(model_lib.OUTPUT_NAME)
  # The same layers with the penultimate features as a second output: one forward pass.
  with_features = tf.keras.Model(model.input, [output_layer.input, model.output])
  ood_threshold = tf.constant(detector.threshold, tf.float64)

  def predict(encoded_images):
    penultimate, probabilities = with_features(
      serving_model_input(model.tft_layer, image, encoded_images)
    )
    probabilities = tf.cast(probabilities, tf.float32)
    class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
    # As the Trainer computes them (trainer.eval_logits_and_labels): float64, before the softmax.
    kernel, bias = (tf.cast(w, tf.float64) for w in (output_layer.kernel, output_layer.bias))
    logits = tf.matmul(tf.cast(penultimate, tf.float64), kernel) + bias
    ood_score = detector.graph_scores(penultimate, logits)
    return {
      'probabilities': probabilities,
      'class_id': class_id,
      'class_name': tf.gather(class_names, class_id),
      'covid_positive': tf.cast(probabilities[:, labels.COVID], tf.float64) > threshold,
      'ood_score': tf.cast(ood_score, tf.float32),
      'in_distribution': ood_score <= ood_threshold,
    }

  @tf.function(
    input_signature=[tf.TensorSpec([None], tf.string, name='image_bytes')], autograph=False
  )
  def serve_images(image_bytes):
    return predict(image_bytes)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='examples')], autograph=False)
  def serve_examples(examples):
    parsed = tf.io.parse_example(examples, {features.IMAGE_KEY: raw_spec[features.IMAGE_KEY]})
    return predict(parsed[features.IMAGE_KEY])

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='examples')], autograph=False)
  def transform_features(examples):
    return model.tft_layer(tf.io.parse_example(examples, raw_spec))

  return {
    'serving_default': serve_images.get_concrete_function(),
    'serving_examples': serve_examples.get_concrete_function(),
    'transform_features': transform_features.get_concrete_function(),
  }
