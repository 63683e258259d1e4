"""Serving signatures of a saved tiny model: outputs, and the same model input as training."""

import dataclasses
import io
import os

import numpy as np
from PIL import Image
import pytest
from scipy.spatial import distance
import tensorflow as tf

from benchmarks import tfx_transform
from components import audit
from components import features
from components import gradcam
from components import image_ops
from components import input_pipeline
from components import labels
from components import model as model_lib
from components import ood
from components import signatures
from components.image_spec import ImageSpec
from components.ingestion import example_encoding
import fake_cxr_model

# One worker runs the whole module under `pytest -n 2 --dist loadgroup`: its Transform fixture
# runs once.
pytestmark = pytest.mark.xdist_group('signatures')

SIZE = 32
COVID_THRESHOLD = 1 / 3  # the tiny model's P(COVID) lies on both sides of it
REGIONS = audit.Regions(((0.5, 0.5, 0.3, 0.4),), 0.15)


def _encode(array: np.ndarray, image_format: str) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, image_format)
  return buffer.getvalue()


def _images():
  """Distinct images in the formats serving accepts: 8/16-bit grey PNG, RGB JPEG, RGBA PNG."""
  rng = np.random.default_rng(0)
  texture = lambda shape: np.clip(rng.normal(0.5, 0.2, shape), 0, 1)
  return [
    _encode((texture((40, 48)) * 255).astype(np.uint8), 'PNG'),
    _encode((texture((50, 40)) * 65535).astype(np.uint16), 'PNG'),
    _encode((texture((36, 36, 3)) * 255).astype(np.uint8), 'JPEG'),
    _encode((texture((44, 44, 4)) * 255).astype(np.uint8), 'PNG'),
  ]


IMAGES = _images()


@pytest.fixture(scope='module')
def transformed(tmp_path_factory):
  """Transform output and the transformed pattern of a split holding IMAGES (labels 0,1,2,0)."""
  raw_path = str(tmp_path_factory.mktemp('raw') / 'train.gz')
  with tf.io.TFRecordWriter(raw_path, options='GZIP') as writer:
    for i, encoded in enumerate(IMAGES):
      writer.write(example_encoding.serialize(tfx_transform.raw_features(encoded, i % 3)))
  output_dir = str(tmp_path_factory.mktemp('transform'))
  output = tfx_transform.run(
    {'train': raw_path}, output_dir, {'image_size': SIZE, 'image_channels': 1}
  )
  return output, os.path.join(
    output_dir, tfx_transform.TRANSFORMED_EXAMPLES_DIR, 'Split-train', '*'
  )


def _tiny_model():
  """Flatten, 4 linear features, Dense softmax: each output moves visibly when any input pixel
  changes by 1/255."""
  inputs = tf.keras.Input((SIZE, SIZE, 3))
  penultimate = tf.keras.layers.Dense(
    4, kernel_initializer=tf.keras.initializers.RandomNormal(stddev=0.05, seed=2)
  )(tf.keras.layers.Flatten()(inputs))
  dense = tf.keras.layers.Dense(
    3,
    activation='softmax',
    kernel_initializer=tf.keras.initializers.RandomNormal(stddev=1.0, seed=1),
    name=model_lib.OUTPUT_NAME,
  )
  return tf.keras.Model(inputs, dense(penultimate))


def _penultimate(model, model_input):
  return tf.keras.Model(model.input, model.get_layer(model_lib.OUTPUT_NAME).input)(
    model_input
  ).numpy()


def _detector(model, output, image):
  """A Mahalanobis detector whose two class means are the features of IMAGES[0] and IMAGES[1],
  with a threshold between the scores of the two other images (one in, one out), and an
  appearance score whose means are the thumbnails of IMAGES[2] and IMAGES[3], with a threshold
  between the scores of IMAGES[0] and IMAGES[1] (one in, one out)."""
  model_input = signatures.serving_model_input(
    output.transform_features_layer(), image, tf.constant(IMAGES)
  )
  features = _penultimate(model, model_input).astype(np.float64)
  thumbnails = ood.appearance(model_input).numpy()
  rng = np.random.default_rng(0)
  mixing, appearance_mixing = rng.normal(size=(4, 4)), rng.normal(size=(64, 64))
  detector = ood.Detector(
    'mahalanobis',
    appearance=ood.Gaussians(thumbnails[2:], appearance_mixing @ appearance_mixing.T),
    gaussians=ood.Gaussians(features[:2], mixing @ mixing.T + np.eye(4)),
  )
  scores = np.sort(detector.scores(features, None))
  appearance_scores = np.sort(detector.appearance.scores(thumbnails[:2]))
  return dataclasses.replace(
    detector,
    threshold=float(scores[2:].mean()),
    appearance_threshold=float(appearance_scores.mean()),
  )


@pytest.fixture(scope='module', params=['featurewise_center', 'resnet_v2'])
def served(request, transformed, tmp_path_factory):
  """(normalization, in-memory model, detector, loaded SavedModel) for each normalization."""
  output, _ = transformed
  model = _tiny_model()
  image = ImageSpec(SIZE, 1, request.param)
  detector = _detector(model, output, image)
  path = str(tmp_path_factory.mktemp('model'))
  tf.saved_model.save(
    model,
    path,
    signatures=signatures.make_serving_signatures(
      model, output, image, COVID_THRESHOLD, REGIONS, detector
    ),
  )
  return request.param, model, detector, tf.saved_model.load(path)


def _numpy(outputs):
  return {key: value.numpy() for key, value in outputs.items()}


def test_signature_inputs_and_outputs(served):
  _, _, _, loaded = served
  assert set(loaded.signatures) == {
    'serving_default',
    'serving_examples',
    signatures.EVALUATION_SIGNATURE,
    'transform_features',
  }
  for name, input_name in (('serving_default', 'image_bytes'), ('serving_examples', 'examples')):
    signature = loaded.signatures[name]
    assert signature.structured_input_signature[1] == {
      input_name: tf.TensorSpec([None], tf.string, name=input_name)
    }
    assert signature.structured_outputs == {
      'probabilities': tf.TensorSpec([None, 3], tf.float32, name='probabilities'),
      'class_id': tf.TensorSpec([None], tf.int64, name='class_id'),
      'class_name': tf.TensorSpec([None], tf.string, name='class_name'),
      'covid_positive': tf.TensorSpec([None], tf.bool, name='covid_positive'),
      'ood_score': tf.TensorSpec([None], tf.float32, name='ood_score'),
      'appearance_score': tf.TensorSpec([None], tf.float32, name='appearance_score'),
      'in_distribution': tf.TensorSpec([None], tf.bool, name='in_distribution'),
    }


def _training_images(transformed, normalization: str) -> tf.Tensor:
  """The model input of every transformed example, as training reads them (Beam's order)."""
  output, pattern = transformed
  images, _ = next(
    iter(
      input_pipeline.make_dataset(
        pattern,
        output,
        batch_size=len(IMAGES),
        training=False,
        image=ImageSpec(SIZE, 1, normalization),
      )
    )
  )
  return images


def test_serving_matches_the_training_input_path(served, transformed):
  normalization, model, detector, loaded = served
  training_images = _training_images(transformed, normalization)
  expected = model(training_images).numpy()
  served = _numpy(loaded.signatures['serving_default'](image_bytes=tf.constant(IMAGES)))
  # Transform output order is Beam's: compare the rows as sets (every image gives distinct rows).
  sort_rows = lambda rows: rows[np.lexsort(rows.T)]
  assert len({tuple(np.round(row, 4)) for row in expected}) == len(IMAGES)
  np.testing.assert_allclose(sort_rows(served['probabilities']), sort_rows(expected), atol=2e-6)
  # The OOD scores of the same pass: scipy's Mahalanobis distances of the training input's
  # features and of its 8x8 block means (ood.appearance's area resize of 32 px).
  order = np.lexsort(expected.T)
  blocks = training_images.numpy().mean(axis=-1).reshape(-1, 8, 4, 8, 4).mean(axis=(2, 4))
  for score, gaussians, rows in (
    ('ood_score', detector.gaussians, _penultimate(model, training_images)),
    ('appearance_score', detector.appearance, blocks.reshape(len(IMAGES), -1)),
  ):
    scipy_scores = [
      min(distance.mahalanobis(row, mean, gaussians.precision) for mean in gaussians.means)
      for row in rows
    ]
    np.testing.assert_allclose(
      served[score][np.lexsort(served['probabilities'].T)],
      np.asarray(scipy_scores)[order],
      rtol=1e-4,
      atol=1e-4,
    )
  inside = (served['ood_score'].astype(np.float64) <= detector.threshold) & (
    served['appearance_score'].astype(np.float64) <= detector.appearance_threshold
  )
  np.testing.assert_array_equal(served['in_distribution'], inside)
  assert served['in_distribution'].sum() == 2  # one refused by each score


def test_class_id_and_name_follow_probabilities(served):
  _, _, _, loaded = served
  outputs = _numpy(loaded.signatures['serving_default'](image_bytes=tf.constant(IMAGES)))
  np.testing.assert_allclose(outputs['probabilities'].sum(axis=1), 1.0, rtol=1e-5)
  np.testing.assert_array_equal(outputs['class_id'], outputs['probabilities'].argmax(axis=1))
  assert [name.decode() for name in outputs['class_name']] == [
    labels.CLASS_NAMES[i] for i in outputs['class_id']
  ]
  covid = outputs['probabilities'][:, labels.CLASS_NAMES.index('COVID')]
  np.testing.assert_array_equal(
    outputs['covid_positive'], covid.astype(np.float64) > COVID_THRESHOLD
  )
  assert 0 < outputs['covid_positive'].sum() < len(IMAGES)


def test_serving_examples_needs_no_label_and_matches_serving_default(served):
  _, _, _, loaded = served
  by_bytes = _numpy(loaded.signatures['serving_default'](image_bytes=tf.constant(IMAGES)))
  by_examples = _numpy(
    loaded.signatures['serving_examples'](
      examples=tf.constant(
        [example_encoding.serialize({features.IMAGE_KEY: encoded}) for encoded in IMAGES]
      )
    )
  )
  np.testing.assert_allclose(by_examples['probabilities'], by_bytes['probabilities'], atol=1e-6)
  np.testing.assert_array_equal(by_examples['class_name'], by_bytes['class_name'])
  for score in ('ood_score', 'appearance_score'):
    np.testing.assert_allclose(by_examples[score], by_bytes[score], rtol=1e-6)
  np.testing.assert_array_equal(by_examples['in_distribution'], by_bytes['in_distribution'])


def test_transform_features_gives_the_transform_outputs(served, transformed):
  _, _, _, loaded = served
  output, pattern = transformed
  examples = [
    example_encoding.serialize(tfx_transform.raw_features(encoded, 2)) for encoded in IMAGES
  ]
  got = _numpy(loaded.signatures['transform_features'](examples=tf.constant(examples)))
  assert set(got) == {features.PIXELS_XF, features.PIXEL_MEAN_XF, features.LABEL_XF}
  np.testing.assert_array_equal(got[features.LABEL_XF], [2] * len(IMAGES))
  spec = output.transformed_feature_spec()
  materialized = [
    tf.io.parse_single_example(record, spec)
    for record in tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), compression_type='GZIP')
  ]
  assert sorted(got[features.PIXELS_XF]) == sorted(
    e[features.PIXELS_XF].numpy() for e in materialized
  )
  np.testing.assert_allclose(
    got[features.PIXEL_MEAN_XF], np.stack([e[features.PIXEL_MEAN_XF].numpy() for e in materialized])
  )


def test_evaluation_examples_adds_the_audits_hidden_regions(served):
  """As served, plus the model on the pixels with each region replaced by the image's mean
  (a NumPy occlusion of the decoded pixels as reference)."""
  normalization, model, _, loaded = served
  examples = tf.constant(
    [example_encoding.serialize({features.IMAGE_KEY: encoded}) for encoded in IMAGES]
  )
  got = _numpy(loaded.signatures[signatures.EVALUATION_SIGNATURE](examples=examples))
  served_outputs = _numpy(loaded.signatures['serving_examples'](examples=examples))
  for key, value in served_outputs.items():
    np.testing.assert_array_equal(got[key], value)
  labelled = [
    example_encoding.serialize(tfx_transform.raw_features(encoded, 0)) for encoded in IMAGES
  ]
  pixel_mean = loaded.signatures['transform_features'](examples=tf.constant(labelled))[
    features.PIXEL_MEAN_XF
  ]
  pixels = np.stack([image_ops.decode_resized(encoded, SIZE, 1).numpy() for encoded in IMAGES])
  for name, mask in audit.masks(REGIONS, SIZE, SIZE).items():
    means = np.round(pixels.mean(axis=(1, 2, 3)))[:, None, None, None]
    hidden = np.where(mask[None, :, :, None], means, pixels)
    expected = model(image_ops.model_input(hidden, pixel_mean, normalization)).numpy()
    np.testing.assert_allclose(got[name], expected, atol=2e-6)
    assert np.abs(got[name] - got['probabilities']).max() > 1e-3  # hiding changed the input


def _small_cnn():
  """Two strided convolutions (a 7x7 feature map at 32 px), global average pooling, softmax."""
  init = lambda seed: tf.keras.initializers.RandomNormal(stddev=0.3, seed=seed)
  inputs = tf.keras.Input((SIZE, SIZE, 3))
  x = tf.keras.layers.Conv2D(4, 3, strides=2, activation='relu', kernel_initializer=init(2))(inputs)
  x = tf.keras.layers.Conv2D(8, 3, strides=2, activation='relu', kernel_initializer=init(3))(x)
  x = tf.keras.layers.GlobalAveragePooling2D()(x)
  dense = tf.keras.layers.Dense(
    3, activation='softmax', kernel_initializer=init(4), name=model_lib.OUTPUT_NAME
  )
  return tf.keras.Model(inputs, dense(x))


@pytest.fixture(scope='module')
def explained(transformed, tmp_path_factory):
  """(in-memory small CNN, its SavedModel with the serving and `explain` signatures)."""
  output, _ = transformed
  model = _small_cnn()
  image = ImageSpec(SIZE, 1, 'featurewise_center')
  model_signatures = signatures.make_serving_signatures(
    model, output, image, COVID_THRESHOLD, REGIONS, fake_cxr_model.accepting_detector()
  )
  model_signatures.update(signatures.make_explain_signature(model, output, image))
  path = str(tmp_path_factory.mktemp('explained'))
  tf.saved_model.save(model, path, signatures=model_signatures)
  return model, tf.saved_model.load(path)


def test_explain_is_grad_cam_of_the_served_model_input(explained, transformed):
  """The heatmaps are Grad-CAM's on the training input path, and the classes serving_default's."""
  model, loaded = explained
  explain = loaded.signatures['explain']
  assert explain.structured_input_signature[1] == {
    'image_bytes': tf.TensorSpec([None], tf.string, name='image_bytes')
  }
  got = _numpy(explain(image_bytes=tf.constant(IMAGES)))
  assert got['heatmap'].shape == (len(IMAGES), SIZE, SIZE) and got['heatmap'].dtype == np.float32
  assert all(h.min() >= 0 and h.max() == pytest.approx(1.0) for h in got['heatmap'])
  served = _numpy(loaded.signatures['serving_default'](image_bytes=tf.constant(IMAGES)))
  np.testing.assert_allclose(got['probabilities'], served['probabilities'], atol=1e-6)
  np.testing.assert_array_equal(got['class_id'], served['class_id'])

  training_images = _training_images(transformed, 'featurewise_center')
  probabilities, _, heatmaps = (t.numpy() for t in gradcam.GradCam(model)(training_images))
  # Transform output order is Beam's: pair the images by their probabilities.
  by_probabilities = lambda rows: np.lexsort(rows.T)
  expected = heatmaps[by_probabilities(probabilities)]
  np.testing.assert_allclose(
    got['heatmap'][by_probabilities(got['probabilities'])], expected, atol=1e-5
  )


def test_explain_needs_a_feature_map(transformed):
  output, _ = transformed
  with pytest.raises(ValueError, match='Grad-CAM needs a layer with a 4-D output'):
    signatures.make_explain_signature(_tiny_model(), output, ImageSpec(SIZE, 1, 'resnet_v2'))
