"""Grad-CAM (Selvaraju et al., ICCV 2017) in TensorFlow ops, for the `explain` serving signature.

A heatmap shows where the evidence for the predicted class lies: the gradient of that class's
logit with respect to the feature map of the model's last layer with a 4-D output (for the
ResNet152V2 model its base, whose output is `post_relu`: 7x7 at 224 px) is averaged over space
into one weight per channel; the ReLU of the channels' weighted sum is upsampled bilinearly to the
model input and divided by its maximum, so it lies in [0, 1].

Hand-written rather than tf-keras-vis (0.8.7, the latest), which does not fit: it needs
`deprecated` and `imageio` (not in the lock); on TensorFlow 2.16 it looks for Keras 3's `BaseConv`
class, which the tf-keras layers used here are not; it finishes the map in numpy and scipy after
an eager call, so it cannot be part of a serving graph; and it takes the last convolution inside
a nested model, whose output lives in that model's own graph: "Graph disconnected" for a
backbone used as one layer, as here (keisen/tf-keras-vis#63, #71). Here every step is a graph op
of the served tf.function, so an explanation comes from the exact graph that classified the image.
"""

from typing import Tuple

import tensorflow as tf


def last_feature_map(model: tf.keras.Model) -> tf.Tensor:
  """The output, in `model`'s own graph, of its last layer with a 4-D output [N, h, w, channels].

  A nested model (the ResNet152V2 base) counts as one layer. Its output in the outer graph is that
  of its last call (node -1): its node 0 is its own graph's output, unconnected to `model.inputs`.
  """
  for layer in reversed(model.layers):
    if isinstance(layer, tf.keras.layers.InputLayer) or not layer.inbound_nodes:
      continue  # the input, or a layer tracked as an attribute (the Transform layer), not called
    output = layer.get_output_at(-1)
    if tf.is_tensor(output) and output.shape.rank == 4:
      return output
  raise ValueError(
    f'Grad-CAM needs a layer with a 4-D output (a feature map); {model.name} has none'
  )


def heatmaps(features: tf.Tensor, gradients: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
  """Grad-CAM heatmaps float32 [N, height, width] in [0, 1] (`size` = [height, width]).

  features: the feature map [N, h, w, channels]; gradients: the gradient of each image's class
  score with respect to it. An image whose weighted sum is nowhere positive gets zeros.
  """
  features, gradients = tf.cast(features, tf.float32), tf.cast(gradients, tf.float32)
  weights = tf.reduce_mean(gradients, axis=[1, 2], keepdims=True)
  cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1, keepdims=True))
  cam = tf.image.resize(cam, size, method='bilinear')[..., 0]
  return tf.math.divide_no_nan(cam, tf.reduce_max(cam, axis=[1, 2], keepdims=True))


class GradCam:
  """Grad-CAM of the predicted class of a Keras model that ends in a Dense softmax layer.

  Calling it on model inputs [N, H, W, C] (eagerly or inside a tf.function) returns the model's
  probabilities [N, classes], the predicted class int64 [N] and the heatmaps [N, H, W] (heatmaps).
  The class score is the logit (the output layer before its softmax): a probability saturates at 1
  and its gradient vanishes for confidently classified images.
  """

  def __init__(self, model: tf.keras.Model):
    output = model.get_layer(model.output_names[0])  # model.layers may end in attributes
    if not (
      isinstance(output, tf.keras.layers.Dense)
      and getattr(output.activation, '__name__', '') == 'softmax'
    ):
      raise ValueError(
        f'Grad-CAM needs a model ending in a Dense softmax layer; {model.name} ends in '
        f'{type(output).__name__} {output.name!r}'
      )
    self._output = output
    # Same layers, same weights: the probabilities are the model's own.
    self._model = tf.keras.Model(
      model.inputs, [last_feature_map(model), output.input, model.outputs[0]]
    )

  def __call__(self, inputs: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(inputs)
      features, hidden, probabilities = self._model(inputs, training=False)
      class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
      kernel = self._output.kernel
      logits = tf.matmul(tf.cast(hidden, kernel.dtype), kernel) + self._output.bias
      score = tf.gather(logits, class_id, batch_dims=1)
    gradients = tape.gradient(score, features)
    return probabilities, class_id, heatmaps(features, gradients, tf.shape(inputs)[1:3])
