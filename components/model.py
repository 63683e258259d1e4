"""ResNet V2 transfer model with the seed's head.

Backbone (components.backbones; ResNet152V2 by default; no top) -> GlobalAveragePooling2D ->
[Dense(u, relu) -> Dropout -> BatchNormalization] for u in dense_units -> Dense(3, softmax). The
first `freeze_layers` layers of the backbone are frozen.
"""

import logging
import os
from typing import Optional

import tensorflow as tf

from components import backbones
from components import hparams as hparams_lib
from components import labels

INPUT_NAME = 'image'  # float32 [batch, size, size, 3], components.image_ops.model_input
OUTPUT_NAME = 'probabilities'


class WeightsError(ValueError):
  """The requested backbone weights cannot be obtained or do not fit the backbone."""


def imagenet_weights_path(backbone: backbones.Backbone) -> str:
  """The backbone's ImageNet notop weights file, downloaded once into ~/.keras/models (Keras'
  cache)."""
  try:
    return tf.keras.utils.get_file(
      backbone.weights_file,
      backbone.weights_url,
      cache_subdir='models',
      file_hash=backbone.notop_md5,
    )
  except Exception as e:  # get_file raises a bare Exception on network errors.
    raise WeightsError(
      f'Cannot get the ImageNet weights of {backbone.application} ({e}). Without internet access, '
      f'download {backbone.weights_file} from {backbone.weights_url} on another machine, then '
      f'either pass its path (`--weights /path/to/{backbone.weights_file}`) or copy it into '
      f'{os.path.join("~", ".keras", "models")}/. Use `--weights none` to train from scratch.'
    ) from e


def _check_exists(path: str) -> None:
  if not os.path.isfile(path):
    raise WeightsError(f'Weights file not found: {path}')


def load_base_weights(base: tf.keras.Model, backbone: backbones.Backbone, path: str) -> None:
  """Loads the backbone's notop .h5 weights file into `base`, layer by layer (by_name=False)."""
  _check_exists(path)
  try:
    base.load_weights(path)
  except (ValueError, OSError, KeyError) as e:
    raise WeightsError(
      f'{path} does not hold {backbone.application} notop weights ({e}). Expected a file like '
      f'{backbone.weights_file} with the weights of {len(base.layers)} layers.'
    ) from e


def load_saved_model_weights(model: tf.keras.Model, saved_model_dir: str) -> None:
  """Restores every weight of `model` from an earlier export of the same architecture."""
  try:
    status = model.load_weights(saved_model_dir)
    status.expect_partial()  # the export also holds the Transform layer and signatures
    status.assert_existing_objects_matched()
  except (ValueError, AssertionError, tf.errors.OpError) as e:
    raise WeightsError(
      f'Cannot warm start from {saved_model_dir}: it does not hold the weights of '
      f'this model (another architecture or hyperparameters?): {e}'
    ) from e


def build_model(
  image_size: int,
  hp: hparams_lib.HParams = hparams_lib.HParams(),
  weights: Optional[str] = None,
  warm_start_from: Optional[str] = None,
  num_classes: int = labels.NUM_CLASSES,
) -> tf.keras.Model:
  """The compiled transfer model (Adam, sparse categorical cross-entropy, accuracy).

  Args:
    hp: backbone, weights, freeze_layers (the first N layers of the base are not trained),
      dense_units, dropout, bn_momentum (of every BatchNormalization, base and head),
      learning_rate, xla.
    weights: replaces hp.weights: 'imagenet', 'none' (random init) or the path to the backbone's
      notop .h5 file.
    warm_start_from: a SavedModel exported from a model of the same architecture, whose weights
      replace the initial ones (pass weights='none' to skip loading the backbone's).

  Build it inside the distribution strategy's scope and after setting the Keras dtype policy;
  the output layer always computes in float32.
  """
  weights = weights or hp.weights
  backbone = backbones.BACKBONES[hp.backbone]
  # Weights are found before the slow build, to fail fast.
  if weights == 'imagenet':
    weights_path = imagenet_weights_path(backbone)
  elif weights == 'none':
    weights_path = None
  else:
    weights_path = weights
    _check_exists(weights_path)
  base = getattr(tf.keras.applications, backbone.application)(
    include_top=False, weights=None, input_shape=(image_size, image_size, 3)
  )
  if weights_path:
    load_base_weights(base, backbone, weights_path)
  for i, layer in enumerate(base.layers):
    layer.trainable = i >= hp.freeze_layers
  logging.info(
    '%s base: %d layers, weights=%s, first %d frozen',
    backbone.application,
    len(base.layers),
    weights,
    min(hp.freeze_layers, len(base.layers)),
  )

  inputs = tf.keras.Input(shape=(image_size, image_size, 3), name=INPUT_NAME)
  x = base(inputs)
  x = tf.keras.layers.GlobalAveragePooling2D(name='avg_pool')(x)
  for i, units in enumerate(hp.dense_units, 1):
    x = tf.keras.layers.Dense(units, activation='relu', name=f'dense_{i}')(x)
    x = tf.keras.layers.Dropout(hp.dropout, name=f'dropout_{i}')(x)
    x = tf.keras.layers.BatchNormalization(name=f'batch_norm_{i}')(x)
  outputs = tf.keras.layers.Dense(
    num_classes, activation='softmax', dtype='float32', name=OUTPUT_NAME
  )(x)
  model = tf.keras.Model(inputs, outputs, name=f'{backbone.name}_cxr')
  for layer in base.layers + model.layers:
    if isinstance(layer, tf.keras.layers.BatchNormalization):
      layer.momentum = hp.bn_momentum
  if warm_start_from:
    load_saved_model_weights(model, warm_start_from)
    logging.info('Warm start: weights restored from %s', warm_start_from)
  model.compile(
    optimizer=tf.keras.optimizers.Adam(learning_rate=hp.learning_rate),
    loss=tf.keras.losses.SparseCategoricalCrossentropy(),
    metrics=['accuracy'],
    jit_compile=hp.xla,
  )
  # TF 2.16's autograph skips the `keras` package but not `tf_keras`: converting every layer call
  # makes tracing a ResNet several times slower, and Keras' own steps need no conversion.
  for step in ('train_step', 'test_step', 'predict_step'):
    setattr(model, step, tf.autograph.experimental.do_not_convert(getattr(model, step)))
  return model
