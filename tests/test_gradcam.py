"""Grad-CAM: the heatmap math against CAM, heat on a shortcut marker, overlays, heat shares and the
examples a report shows (the ResNet152V2 base: tests/test_model.py)."""

import io
import math

import matplotlib
import numpy as np
from PIL import Image
import pytest
from scipy import special
import tensorflow as tf

from components import demo_data
from components import gradcam
from components import gradcam_views
from components import labels

pytestmark = pytest.mark.xdist_group('gradcam')  # one worker trains the module's marker model

IMAGE_SIDE = 64  # px, of the generated marker images
MARKER_SIDE = 8
MARGIN = 6  # px around a marker that still counts as on it


def _cam_model(kernel: np.ndarray, bias: np.ndarray) -> tf.keras.Model:
  """4x4x2 input -> 2x2 average pooling (the feature map) -> global average -> Dense softmax."""
  inputs = tf.keras.Input((4, 4, 2))
  features = tf.keras.layers.AveragePooling2D(2)(inputs)
  pooled = tf.keras.layers.GlobalAveragePooling2D()(features)
  outputs = tf.keras.layers.Dense(3, activation='softmax')(pooled)
  model = tf.keras.Model(inputs, outputs)
  model.layers[-1].set_weights([kernel, bias])
  return model


def test_heatmaps_are_the_class_activation_maps_of_a_global_average_pooling_model():
  """For global average pooling then Dense, Grad-CAM is CAM (Selvaraju et al. 2017, 3.1): the
  ReLU of the feature map weighted by the predicted class's Dense weights, here upsampled by
  PIL's bilinear resize and divided by its maximum."""
  kernel = np.array([[3.0, -3.0, 0.5], [-1.0, 0.0, 3.0]], np.float32)
  bias = np.array([0.1, -0.2, 0.05], np.float32)
  rng = np.random.default_rng(0)
  inputs = rng.normal(size=(12, 4, 4, 2)).astype(np.float32)
  probabilities, class_id, heatmaps = (
    t.numpy() for t in gradcam.GradCam(_cam_model(kernel, bias))(tf.constant(inputs))
  )

  features = inputs.reshape(12, 2, 2, 2, 2, 2).mean(axis=(2, 4))  # 2x2 average pooling
  logits = features.mean(axis=(1, 2)) @ kernel + bias
  np.testing.assert_allclose(probabilities, special.softmax(logits, axis=1), rtol=1e-5)
  np.testing.assert_array_equal(class_id, logits.argmax(axis=1))
  assert len(set(class_id)) == 3
  for i in range(12):
    cam = np.maximum(features[i] @ kernel[:, class_id[i]], 0).astype(np.float32)
    expected = np.asarray(Image.fromarray(cam).resize((4, 4), Image.BILINEAR))
    np.testing.assert_allclose(heatmaps[i], expected / expected.max(), atol=1e-5)
  assert heatmaps.shape == (12, 4, 4) and heatmaps.dtype == np.float32
  assert (heatmaps == 0).any()  # the ReLU cut negative evidence somewhere


def test_a_map_without_positive_evidence_is_all_zeros():
  kernel = np.array([[1.0, -1.0, 0.0], [1.0, -1.0, 0.0]], np.float32)  # class 0 from positives
  model = _cam_model(kernel, np.array([0.0, 5.0, -5.0], np.float32))  # class 1 is predicted
  _, class_id, heatmaps = gradcam.GradCam(model)(tf.ones((1, 4, 4, 2)))
  assert class_id.numpy().tolist() == [1]
  np.testing.assert_array_equal(heatmaps.numpy(), np.zeros((1, 4, 4)))


def test_a_model_without_a_feature_map_or_a_softmax_output_is_refused():
  inputs = tf.keras.Input((4, 4, 1))
  dense = tf.keras.layers.Dense(3, activation='softmax')(tf.keras.layers.Flatten()(inputs))
  with pytest.raises(ValueError, match='needs a layer with a 4-D output'):
    gradcam.GradCam(tf.keras.Model(inputs, dense))
  linear = tf.keras.layers.Dense(3, name='scores')(tf.keras.layers.Flatten()(inputs))
  with pytest.raises(
    ValueError, match="ending in a Dense softmax layer; .* ends in Dense 'scores'"
  ):
    gradcam.GradCam(tf.keras.Model(inputs, linear))


def _marker_box(corner: int):
  """(rows, columns) of a marker in corner 0 to 3 (top left, top right, bottom left, bottom
  right), 3 px from the edges."""
  near, far = 3, IMAGE_SIDE - 3 - MARKER_SIDE
  top, left = ((near, near), (near, far), (far, near), (far, far))[corner]
  return slice(top, top + MARKER_SIDE), slice(left, left + MARKER_SIDE)


def _marker_images(per_class: int, seed: int):
  """Synthetic chest X-rays whose lungs are drawn alike for both classes (demo_data's NORMAL);
  only a bright square in a random corner tells class 1 from class 0. float32 [N, 64, 64, 1] in
  [0, 1], the classes and the marker corners."""
  rng = np.random.default_rng(seed)
  normal = labels.CLASS_NAMES.index('NORMAL')
  truth = np.repeat([0, 1], per_class)
  corners = rng.integers(0, 4, len(truth))
  images = np.stack([demo_data.render(normal, IMAGE_SIDE, IMAGE_SIDE, rng) for _ in truth])
  images = images.astype(np.float32) / 255.0
  for image, marked, corner in zip(images, truth, corners):
    if marked:
      image[_marker_box(corner)] = 1.0
  return images[..., np.newaxis], truth, corners


@pytest.fixture(scope='module')
def marker_model():
  """A small CNN (three convolutions, global average pooling, as ResNet152V2 ends) trained on
  the marker images, a few seconds."""
  tf.keras.utils.set_random_seed(1)
  layers = tf.keras.layers
  model = tf.keras.Sequential(
    [
      tf.keras.Input((IMAGE_SIDE, IMAGE_SIDE, 1)),
      layers.Conv2D(8, 3, padding='same', activation='relu'),
      layers.MaxPooling2D(2),
      layers.Conv2D(16, 3, padding='same', activation='relu'),
      layers.MaxPooling2D(2),
      layers.Conv2D(16, 3, padding='same', activation='relu'),
      layers.GlobalAveragePooling2D(),
      layers.Dense(2, activation='softmax'),
    ]
  )
  model.compile(tf.keras.optimizers.Adam(3e-3), 'sparse_categorical_crossentropy')
  # As components.model: tracing tf_keras' train step through autograph takes most of a minute.
  model.train_step = tf.autograph.experimental.do_not_convert(model.train_step)
  images, truth, _ = _marker_images(40, seed=1)
  model.fit(images, truth, batch_size=30, epochs=25, verbose=0)
  return model


def test_grad_cam_of_a_marker_model_puts_most_heat_on_the_marker(marker_model):
  """The issue's check: a model whose class is told only by a marker in a corner."""
  images, truth, corners = _marker_images(15, seed=2)
  probabilities, class_id, heatmaps = (
    t.numpy() for t in gradcam.GradCam(marker_model)(tf.constant(images))
  )
  assert np.mean(class_id == truth) >= 0.9  # the model learned the marker (1.0 here)
  np.testing.assert_allclose(probabilities, marker_model(images).numpy(), atol=1e-6)
  found = (truth == 1) & (class_id == 1)  # heatmaps of the marker class
  assert found.sum() >= 12
  shares = []
  for heatmap, corner in zip(heatmaps[found], corners[found]):
    rows, columns = _marker_box(corner)
    near_marker = np.zeros(heatmap.shape, bool)
    near_marker[
      max(rows.start - MARGIN, 0) : rows.stop + MARGIN,
      max(columns.start - MARGIN, 0) : columns.stop + MARGIN,
    ] = True
    shares.append(gradcam_views.heat_share(heatmap, near_marker))
  # The region is 17x17 px, 7% of the image: heat spread evenly would put 7% there.
  assert min(shares) > 0.5


def test_overlay_colours_each_pixel_by_its_heat_over_the_enlarged_image():
  pixels = np.full((8, 8), 100, np.uint8)
  heatmap = np.zeros((8, 8), np.float32)
  heatmap[:4, :4] = 1.0
  overlay = np.asarray(Image.open(io.BytesIO(gradcam_views.overlay_png(pixels, heatmap))))
  assert overlay.shape == (224, 224, 3)  # 8 px enlarged 28 times
  hot = matplotlib.colormaps[gradcam_views.OVERLAY_COLORMAP](1.0)[:3]
  expected_hot = np.round((0.5 * 100 / 255 + 0.5 * np.array(hot)) * 255)
  np.testing.assert_array_equal(overlay[50, 50], expected_hot)  # deep inside the hot quadrant
  np.testing.assert_array_equal(overlay[170, 170], [100, 100, 100])  # cold: the image
  np.testing.assert_array_equal(overlay[170, 50], [100, 100, 100])
  rgb = np.stack([pixels] * 3, axis=-1)
  big = gradcam_views.overlay_png(np.tile(rgb, (40, 40, 1)), np.zeros((4, 4), np.float32))
  assert Image.open(io.BytesIO(big)).size == (320, 320)  # large enough: kept at its size


def test_heat_share_is_the_heat_inside_the_mask_over_all_heat():
  heatmap = np.array([[1.0, 0.5], [0.5, 0.0]])
  assert gradcam_views.heat_share(heatmap, np.array([[True, False], [False, False]])) == 0.5
  assert gradcam_views.heat_share(heatmap, np.ones((2, 2), bool)) == 1.0
  assert math.isnan(gradcam_views.heat_share(np.zeros((2, 2)), np.ones((2, 2), bool)))
  with pytest.raises(ValueError, match=r'The mask is \(3, 3\), the heatmap \(2, 2\)'):
    gradcam_views.heat_share(heatmap, np.ones((3, 3), bool))


def test_explain_by_class_orders_errors_then_correct_images_and_averages_heat_in_the_lungs():
  lungs = np.array([[True, False], [False, False]])
  inside, half, outside = np.array([[1.0, 0], [0, 0]]), np.full((2, 2), 0.5), np.eye(2)[::-1]
  outputs = {  # image: true class -> predicted class (probability)
    'probabilities': np.array(
      [
        [0.9, 0.05, 0.05],  # 0: COVID -> COVID (0.9)
        [0.6, 0.3, 0.1],  # 1: NORMAL -> COVID (0.6)
        [0.8, 0.1, 0.1],  # 2: NORMAL -> COVID (0.8)
        [0.2, 0.7, 0.1],  # 3: NORMAL -> NORMAL (0.7)
        [0.1, 0.85, 0.05],  # 4: NORMAL -> NORMAL (0.85)
        [0.5, 0.2, 0.3],  # 5: VIRAL PNEUMONIA -> COVID (0.5), no heat
      ]
    ),
    'class_id': np.array([0, 0, 0, 1, 1, 0]),
    'heatmap': np.stack([inside, half, outside, inside, half, np.zeros((2, 2))]),
  }
  summary = gradcam_views.explain_by_class(outputs, [0, 1, 1, 1, 1, 2], lungs, examples_per_class=1)
  assert list(summary) == list(labels.CLASS_NAMES)
  covid, normal, viral = summary.values()
  assert covid == gradcam_views.ClassHeat(
    heat_in_lungs=pytest.approx((1 + 0.25 + 0) / 3), predicted=4, errors=(), correct=(0,)
  )
  assert normal == gradcam_views.ClassHeat(
    heat_in_lungs=pytest.approx((1 + 0.25) / 2), predicted=2, errors=(2,), correct=(4,)
  )
  assert viral == gradcam_views.ClassHeat(heat_in_lungs=None, predicted=0, errors=(5,), correct=())
  everything = gradcam_views.explain_by_class(outputs, [0, 1, 1, 1, 1, 2], lungs)
  assert everything['NORMAL'].errors == (2, 1) and everything['NORMAL'].correct == (4, 3)
