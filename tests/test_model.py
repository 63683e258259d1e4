"""The ResNet V2 transfer model (ResNet152V2 unless said): architecture, frozen layers, output,
weights options, learning."""

import dataclasses
import hashlib
import urllib.error

import numpy as np
import pytest
import tensorflow as tf
from tf_keras.src.utils import data_utils

from components import backbones
from components import gradcam
from components import hparams
from components import labels
from components import model as model_lib

pytestmark = pytest.mark.xdist_group('model')  # one worker builds the module's shared models

SIZE = 32
BASE_LAYERS = 564  # ResNet152V2(include_top=False): the input layer and 563 others
RESNET152V2 = backbones.BACKBONES['resnet152v2']


def _base(model, backbone=RESNET152V2):
  return model.get_layer(backbone.name)


@pytest.fixture(scope='module')
def model():
  return model_lib.build_model(SIZE, weights='none')


@pytest.fixture(scope='module')
def weights_file(tmp_path_factory):
  """A ResNet152V2 notop weights file (random init, saved at 48 px: weights have no size)."""
  base = tf.keras.applications.ResNet152V2(include_top=False, weights=None, input_shape=(48, 48, 3))
  path = str(tmp_path_factory.mktemp('weights') / RESNET152V2.weights_file)
  base.save_weights(path)
  return path, base.get_weights()


def _assert_same_weights(actual, expected):
  assert len(actual) == len(expected)
  for a, e in zip(actual, expected):
    np.testing.assert_array_equal(a, e)


def _no_network(*args, **kwargs):
  raise urllib.error.URLError('no network in tests')


@pytest.mark.parametrize('backbone', backbones.BACKBONES.values(), ids=lambda b: b.name)
def test_each_backbones_weights_file_is_the_one_tf_keras_downloads_and_checks(backbone):
  """backbones.py copies tf_keras's file names and hashes so that `cxr` reads them without
  importing TensorFlow: they must stay tf_keras's."""
  from tf_keras.src.applications import resnet

  assert backbone.notop_md5 == resnet.WEIGHTS_HASHES[backbone.name][1]
  assert backbone.weights_url == resnet.BASE_WEIGHTS_PATH + backbone.weights_file
  assert getattr(tf.keras.applications, backbone.application)


def test_backbone_then_the_seed_head(model):
  assert len(_base(model).layers) == BASE_LAYERS
  assert [type(layer).__name__ for layer in model.layers] == (
    ['InputLayer', 'Functional', 'GlobalAveragePooling2D']
    + ['Dense', 'Dropout', 'BatchNormalization'] * 3
    + ['Dense']
  )
  dense = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.Dense)]
  assert [layer.units for layer in dense] == [512, 256, 64, labels.NUM_CLASSES]
  assert [layer.activation.__name__ for layer in dense] == ['relu'] * 3 + ['softmax']
  assert [layer.rate for layer in model.layers if isinstance(layer, tf.keras.layers.Dropout)] == [
    0.3
  ] * 3
  assert model.input_names == [model_lib.INPUT_NAME]
  assert model.input_shape == (None, SIZE, SIZE, 3)


def test_exactly_the_first_freeze_layers_are_frozen(model):
  base = _base(model)
  assert [layer.trainable for layer in base.layers] == [False] * 300 + [True] * (BASE_LAYERS - 300)
  trainable = {id(w) for w in model.trainable_weights}
  frozen_weights = [w for layer in base.layers[:300] for w in layer.weights]
  assert frozen_weights and not any(id(w) in trainable for w in frozen_weights)
  tuned_weights = [w for layer in base.layers[300:] for w in layer.trainable_weights]
  assert tuned_weights and all(id(w) in trainable for w in tuned_weights)
  assert all(layer.trainable for layer in model.layers[2:])


def test_outputs_float32_probabilities(model):
  assert model.output_shape == (None, labels.NUM_CLASSES)
  assert model.output.dtype == tf.float32
  images = np.random.default_rng(0).normal(size=(5, SIZE, SIZE, 3)).astype(np.float32)
  probabilities = model(images, training=False).numpy()
  assert probabilities.shape == (5, labels.NUM_CLASSES) and probabilities.dtype == np.float32
  assert (probabilities >= 0).all()
  np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_compiled_with_adam_and_sparse_cross_entropy(model):
  assert isinstance(model.optimizer, tf.keras.optimizers.Adam)
  assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(1e-4)
  assert isinstance(model.loss, tf.keras.losses.SparseCategoricalCrossentropy)


@pytest.fixture(scope='module')
def head_only_model():
  """Backbone frozen, faster learning rate and BatchNormalization momentum."""
  tf.keras.utils.set_random_seed(0)
  hp = hparams.HParams(freeze_layers=BASE_LAYERS, learning_rate=1e-3, bn_momentum=0.9)
  return model_lib.build_model(SIZE, hp, weights='none')


def test_bn_momentum_applies_to_backbone_and_head(head_only_model):
  layers = _base(head_only_model).layers + head_only_model.layers
  momenta = [
    layer.momentum for layer in layers if isinstance(layer, tf.keras.layers.BatchNormalization)
  ]
  assert len(momenta) == 151 + 3 and set(momenta) == {0.9}  # ResNet152V2 has 151


def test_a_few_steps_lower_the_loss(head_only_model):
  net = head_only_model
  rng = np.random.default_rng(0)
  y = np.arange(12) % labels.NUM_CLASSES
  x = (rng.normal(0, 0.1, (12, SIZE, SIZE, 3)) + (y[:, None, None, None] - 1) * 0.5).astype(
    np.float32
  )
  data = tf.data.Dataset.from_tensors((x, y)).repeat()
  losses = net.fit(data, steps_per_epoch=1, epochs=8, verbose=0).history['loss']
  assert np.mean(losses[-3:]) < 0.5 * losses[0]


def test_loads_a_local_weights_file(weights_file):
  path, expected = weights_file
  net = model_lib.build_model(SIZE, weights=path)
  _assert_same_weights(_base(net).get_weights(), expected)


def test_imagenet_weights_come_from_the_keras_cache(weights_file, tmp_path, monkeypatch):
  path, expected = weights_file
  cache = tmp_path / '.keras' / 'models'
  cache.mkdir(parents=True)
  (cache / RESNET152V2.weights_file).symlink_to(path)
  with open(path, 'rb') as f:
    md5 = hashlib.md5(f.read()).hexdigest()
  monkeypatch.setitem(
    backbones.BACKBONES, RESNET152V2.name, dataclasses.replace(RESNET152V2, notop_md5=md5)
  )
  monkeypatch.setenv('HOME', str(tmp_path))
  monkeypatch.setattr(data_utils, 'urlretrieve', _no_network)
  net = model_lib.build_model(SIZE, weights='imagenet')
  _assert_same_weights(_base(net).get_weights(), expected)


def test_imagenet_offline_fails_fast_and_says_how_to_supply_the_file(tmp_path, monkeypatch):
  monkeypatch.setenv('HOME', str(tmp_path))
  monkeypatch.setattr(data_utils, 'urlretrieve', _no_network)
  monkeypatch.setattr(tf.keras.applications, 'ResNet152V2', lambda **_: pytest.fail('built'))
  with pytest.raises(model_lib.WeightsError) as error:
    model_lib.build_model(SIZE, weights='imagenet')
  message = str(error.value)
  assert 'no network in tests' in message
  assert f'--weights /path/to/{RESNET152V2.weights_file}' in message
  assert '~/.keras/models' in message and '--weights none' in message


def _resnet50v2_weights(path):
  tf.keras.applications.ResNet50V2(
    include_top=False, weights=None, input_shape=(SIZE, SIZE, 3)
  ).save_weights(path)


def _tiny_model_weights(path):
  tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)]).save_weights(path)


def _not_hdf5(path):
  with open(path, 'wb') as f:
    f.write(b'not an HDF5 file')


@pytest.mark.parametrize(
  'write, cause',
  [
    (_resnet50v2_weights, 'Layer count mismatch'),
    (_tiny_model_weights, 'Layer count mismatch'),
    (_not_hdf5, ''),
  ],
)
def test_a_file_for_another_model_is_rejected(model, tmp_path, write, cause):
  path = str(tmp_path / 'other.h5')
  write(path)
  with pytest.raises(
    model_lib.WeightsError, match='does not hold ResNet152V2 notop weights'
  ) as error:
    model_lib.load_base_weights(_base(model), RESNET152V2, path)
  assert cause in str(error.value) and f'{BASE_LAYERS} layers' in str(error.value)


def test_a_smaller_backbone_with_its_own_weights_file(model, tmp_path):
  """ResNet50V2 (190 base layers) loads ResNet50V2 weights under the same head; the default
  backbone refuses that file, naming itself."""
  resnet50v2 = backbones.BACKBONES['resnet50v2']
  saved = tf.keras.applications.ResNet50V2(
    include_top=False, weights=None, input_shape=(SIZE, SIZE, 3)
  )
  path = str(tmp_path / resnet50v2.weights_file)
  saved.save_weights(path)
  net = model_lib.build_model(SIZE, hparams.HParams(backbone='resnet50v2', freeze_layers=10), path)
  base = _base(net, resnet50v2)
  assert len(base.layers) == 190 and net.name == 'resnet50v2_cxr'
  assert [layer.trainable for layer in base.layers] == [False] * 10 + [True] * 180
  _assert_same_weights(base.get_weights(), saved.get_weights())
  assert [layer.name for layer in net.layers[2:]] == [layer.name for layer in model.layers[2:]]
  with pytest.raises(model_lib.WeightsError, match='does not hold ResNet152V2 notop weights'):
    model_lib.load_base_weights(_base(model), RESNET152V2, path)


def test_a_missing_weights_file_is_named(tmp_path):
  with pytest.raises(model_lib.WeightsError, match='Weights file not found: .*missing.h5'):
    model_lib.build_model(SIZE, weights=str(tmp_path / 'missing.h5'))


def test_grad_cam_uses_the_base_output_post_relu(model):
  """The base is one nested layer: Grad-CAM takes its output in the model's own graph (1x1 at
  32 px: each heatmap is uniform), the same as the gradient through the model's own layers."""
  assert _base(model).layers[-1].name == 'post_relu'
  assert gradcam.last_feature_map(model).shape.as_list() == [None, 1, 1, 2048]
  images = tf.constant(np.random.default_rng(0).normal(size=(4, SIZE, SIZE, 3)), tf.float32)
  probabilities, class_id, heatmaps = gradcam.GradCam(model)(images)
  np.testing.assert_allclose(
    probabilities.numpy(), model(images, training=False).numpy(), atol=1e-6
  )

  with tf.GradientTape() as tape:
    features = _base(model)(images, training=False)
    tape.watch(features)
    hidden = features
    for layer in model.layers[2:-1]:  # pooling and the head before the output layer
      hidden = layer(hidden, training=False)
    output = model.layers[-1]
    score = tf.gather(hidden @ output.kernel + output.bias, class_id, batch_dims=1)
  expected = gradcam.heatmaps(features, tape.gradient(score, features), [SIZE, SIZE])
  np.testing.assert_array_equal(heatmaps.numpy(), expected.numpy())
  assert heatmaps.shape == (4, SIZE, SIZE)
