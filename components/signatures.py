"""Serving signatures: raw image bytes or raw tf.Examples in, through the Transform graph.

The Transform layer turns raw images into `pixels_xf` and `pixel_mean_xf` exactly as for the
materialized training examples, then image_ops.decode_pixels and image_ops.model_input build
the model input as the training input does, so training and serving share one graph.
"""

from typing import Callable, Dict

import tensorflow as tf
import tensorflow_transform as tft

from components import audit
from components import features
from components import gradcam
from components import image_ops
from components import labels
from components import model as model_lib
from components import ood
from components.image_spec import ImageSpec

EVALUATION_SIGNATURE = 'evaluation_examples'  # the Evaluator's: served outputs + the audit's


def _pixels_and_mean(tft_layer, encoded_images: tf.Tensor, image: ImageSpec):
  """Encoded images string [N] -> the model's uint8 pixels [N, size, size, channels] and the
  train-split pixel mean, through the Transform layer as in training."""
  transformed = tft_layer({features.IMAGE_KEY: tf.reshape(encoded_images, [-1, 1])})
  pixels = tf.map_fn(
    lambda png: image_ops.decode_pixels(png, image.channels),
    transformed[features.PIXELS_XF],
    fn_output_signature=tf.TensorSpec([image.size, image.size, image.channels], tf.uint8),
  )
  return pixels, transformed[features.PIXEL_MEAN_XF]


def serving_model_input(tft_layer, image: ImageSpec, encoded_images: tf.Tensor) -> tf.Tensor:
  """Encoded images (string [N]) -> the model input, through the Transform layer `tft_layer` and
  the training input's decoding and normalization."""
  pixels, pixel_mean = _pixels_and_mean(tft_layer, encoded_images, image)
  return image_ops.model_input(pixels, pixel_mean, image.normalization)


def make_serving_signatures(
  model: tf.keras.Model,
  tf_transform_output: tft.TFTransformOutput,
  image: ImageSpec,
  covid_threshold: float,
  regions: audit.Regions,
  detector: ood.Detector,
) -> Dict[str, Callable]:
  """Signatures for tf.saved_model.save(model, path, signatures=...).

  serving_default(image_bytes: string [None]) and serving_examples(examples: string [None],
  serialized raw tf.Examples; only `image` is read) -> probabilities float32 [None, 3],
  class_id int64 [None], class_name string [None], covid_positive bool [None]
  (P(COVID) > covid_threshold, compared in float64 as components.operating_point does),
  ood_score float32 [None] (the detector's model score, from the penultimate features and logits
  of the same forward pass), appearance_score float32 [None] (ood.appearance of the model input)
  and in_distribution bool [None] (both within the detector's thresholds, in float64).
  evaluation_examples(examples) -> the same, plus the probabilities with each region of
  `regions` hidden (audit.LUNGS_HIDDEN, audit.BORDERS_HIDDEN): what the Evaluator scores.
  transform_features(examples: string [None]) -> the Transform outputs (pixels_xf,
  pixel_mean_xf, label_xf), for TFMA's preprocessing_function_names.
  """
  model.tft_layer = tf_transform_output.transform_features_layer()  # tracked, so it is exported
  raw_spec = tf_transform_output.raw_feature_spec()
  class_names = tf.constant(labels.CLASS_NAMES)
  threshold = tf.constant(covid_threshold, tf.float64)
  hidden_masks = {
    name: tf.constant(mask) for name, mask in audit.masks(regions, image.size, image.size).items()
  }
  output_layer = model.get_layer(model_lib.OUTPUT_NAME)
  # The same layers with the penultimate features as a second output: one forward pass.
  with_features = tf.keras.Model(model.input, [output_layer.input, model.output])
  ood_threshold = tf.constant(detector.threshold, tf.float64)
  appearance_threshold = tf.constant(detector.appearance_threshold, tf.float64)

  def probabilities(pixels, pixel_mean):
    return tf.cast(
      model(image_ops.model_input(pixels, pixel_mean, image.normalization)), tf.float32
    )

  def outputs(pixels, pixel_mean):
    model_input = image_ops.model_input(pixels, pixel_mean, image.normalization)
    penultimate, probs = with_features(model_input)
    probs = tf.cast(probs, tf.float32)
    class_id = tf.argmax(probs, axis=-1, output_type=tf.int64)
    # As the Trainer computes them (trainer.observe): float64, before the softmax.
    kernel, bias = (tf.cast(w, tf.float64) for w in (output_layer.kernel, output_layer.bias))
    logits = tf.matmul(tf.cast(penultimate, tf.float64), kernel) + bias
    ood_score = detector.graph_scores(penultimate, logits)
    appearance_score = detector.appearance.graph_scores(ood.appearance(model_input))
    return {
      'probabilities': probs,
      'class_id': class_id,
      'class_name': tf.gather(class_names, class_id),
      'covid_positive': tf.cast(probs[:, labels.COVID], tf.float64) > threshold,
      'ood_score': tf.cast(ood_score, tf.float32),
      'appearance_score': tf.cast(appearance_score, tf.float32),
      'in_distribution': (ood_score <= ood_threshold) & (appearance_score <= appearance_threshold),
    }

  def parse_images(examples):
    parsed = tf.io.parse_example(examples, {features.IMAGE_KEY: raw_spec[features.IMAGE_KEY]})
    return parsed[features.IMAGE_KEY]

  @tf.function(
    input_signature=[tf.TensorSpec([None], tf.string, name='image_bytes')], autograph=False
  )
  def serve_images(image_bytes):
    return outputs(*_pixels_and_mean(model.tft_layer, image_bytes, image))

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='examples')], autograph=False)
  def serve_examples(examples):
    return outputs(*_pixels_and_mean(model.tft_layer, parse_images(examples), image))

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='examples')], autograph=False)
  def evaluate_examples(examples):
    pixels, pixel_mean = _pixels_and_mean(model.tft_layer, parse_images(examples), image)
    result = outputs(pixels, pixel_mean)
    for name, mask in hidden_masks.items():
      result[name] = probabilities(image_ops.hide_region(pixels, mask), pixel_mean)
    return result

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='examples')], autograph=False)
  def transform_features(examples):
    return model.tft_layer(tf.io.parse_example(examples, raw_spec))

  return {
    'serving_default': serve_images.get_concrete_function(),
    'serving_examples': serve_examples.get_concrete_function(),
    EVALUATION_SIGNATURE: evaluate_examples.get_concrete_function(),
    'transform_features': transform_features.get_concrete_function(),
  }


def make_explain_signature(
  model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput, image: ImageSpec
) -> Dict[str, Callable]:
  """The `explain` signature: Grad-CAM of the predicted class (components.gradcam), computed in
  the served graph from the same model input as serving_default, for tf.saved_model.save.

  explain(image_bytes: string [None]) -> probabilities float32 [None, 3] (serving_default's),
  class_id int64 [None], heatmap float32 [None, size, size] in [0, 1] (the model input's grid).
  The model needs a layer with a 4-D output and a Dense softmax output layer.
  """
  model.tft_layer = tf_transform_output.transform_features_layer()  # the same layer, cached
  explainer = gradcam.GradCam(model)

  @tf.function(
    input_signature=[tf.TensorSpec([None], tf.string, name='image_bytes')], autograph=False
  )
  def explain(image_bytes):
    probabilities, class_id, heatmap = explainer(
      serving_model_input(model.tft_layer, image, image_bytes)
    )
    return {'probabilities': probabilities, 'class_id': class_id, 'heatmap': heatmap}

  return {'explain': explain.get_concrete_function()}
