"""The masking audit: its regions and occlusion, and the Evaluator's verdict through the real
`evaluation_examples` signature on two small CNNs: one trained on images whose class is told only
by a marker in a corner (lungs alike across classes), one on the demo data (signal in the lungs).
"""

import io
import os

import numpy as np
from PIL import Image
import pytest
from sklearn import metrics as sk_metrics
import tensorflow as tf
from tfx.types import standard_artifacts

from benchmarks import tfx_transform
from components import audit
from components import demo_data
from components import features
from components import image_ops
from components import labels
from components import model as model_lib
from components import signatures
from components.evaluation import results
from components.evaluation.gate import Gate
from components.image_spec import ImageSpec
from components.ingestion import example_encoding
import fake_cxr_model
from pipeline import cli
from pipeline import report_gate

pytestmark = pytest.mark.xdist_group('audit')

SIZE = 64
TRAIN_PER_CLASS, TEST_PER_CLASS = 40, 30
MARKER = 5  # side of the marker square, inside the default 10% border band (pixels 0-5)
# Class -> marker corner (top, left): COVID top-left, NORMAL top-right, VIRAL PNEUMONIA bottom-left.
CORNERS = {0: (1, 1), 1: (1, SIZE - 1 - MARKER), 2: (SIZE - 1 - MARKER, 1)}
IMAGE = ImageSpec(SIZE, 1, 'resnet_v2')  # no train-split mean: one Transform serves both models


def test_default_regions_cover_the_lungs_and_the_border_band():
  masks = audit.masks(audit.Regions(), 100, 100)
  lungs, borders = masks[audit.LUNGS_HIDDEN], masks[audit.BORDERS_HIDDEN]
  assert borders.mean() == pytest.approx(1 - 0.8**2)  # outer 10% of each side
  assert lungs.mean() == pytest.approx(2 * np.pi * 0.19 * 0.33, abs=0.01)  # two ellipses
  assert not (lungs & borders).any()
  assert lungs[47, 30] and lungs[47, 70] and not lungs[47, 50]  # both lungs, not the mediastinum


def test_regions_parse_round_trip_and_refuse_bad_values():
  regions = audit.Regions.parse('0.3,0.5,0.2,0.3;0.7,0.5,0.2,0.3', 0.05)
  assert regions.lungs == ((0.3, 0.5, 0.2, 0.3), (0.7, 0.5, 0.2, 0.3)) and regions.border == 0.05
  assert audit.Regions.from_config(regions.to_config()) == regions
  assert audit.Regions.from_config({}) == audit.Regions() == audit.Regions.parse()
  with pytest.raises(ValueError, match="--audit-lungs takes ellipses 'cx,cy,rx,ry"):
    audit.Regions.parse('left lung')
  with pytest.raises(ValueError, match='one or more ellipses cx,cy,rx,ry'):
    audit.Regions.parse('0.3,0.5,0.2')
  with pytest.raises(ValueError, match='audit border must be a fraction in'):
    audit.Regions(border=0.5)


def test_cli_flags_set_the_regions_and_allow_shortcuts():
  args = cli.build_parser().parse_args(
    ['run', '--data', 'd', '--output', 'o', '--audit-lungs', '0.3,0.5,0.2,0.3', '--audit-border',
     '0.2', '--allow-shortcuts']
  )  # fmt: skip
  options = cli.run_options_from_args(args)
  assert options.audit_regions == audit.Regions(((0.3, 0.5, 0.2, 0.3),), 0.2)
  assert options.gate == Gate(allow_shortcuts=True)
  assert audit.Regions.from_config(options.trainer_config()) == options.audit_regions
  default = cli.run_options_from_args(
    cli.build_parser().parse_args(['run', '--data', 'd', '--output', 'o'])
  )
  assert default.audit_regions == audit.Regions() and not default.gate.allow_shortcuts


def test_hide_region_replaces_the_region_by_each_images_mean():
  rng = np.random.default_rng(0)
  pixels = rng.integers(0, 256, (2, 8, 8, 1), dtype=np.uint8)
  mask = np.zeros((8, 8), bool)
  mask[2:5, 3:7] = True
  hidden = image_ops.hide_region(tf.constant(pixels), tf.constant(mask)).numpy()
  for image, result in zip(pixels, hidden):
    assert (result[~mask] == image[~mask]).all()
    assert (result[mask] == np.round(image.mean())).all()


def _png(array: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format='PNG')
  return buffer.getvalue()


def _dataset(kind: str, split: int, per_class: int):
  """[(png bytes, label)]: 'marker' (every image a NORMAL thorax, the class a square in its
  corner) or 'lungs' (the demo data: the class in the lung fields)."""
  images = []
  for label in range(labels.NUM_CLASSES):
    for i in range(per_class):
      rng = np.random.default_rng([7, split, label, i])
      thorax = demo_data.render(
        labels.CLASS_NAMES.index('NORMAL') if kind == 'marker' else label, SIZE, SIZE, rng
      )
      if kind == 'marker':
        top, left = CORNERS[label]
        thorax[top : top + MARKER, left : left + MARKER] = 255
      images.append((_png(thorax), label))
  return images


def _model_input(images):
  pixels = np.stack([np.asarray(Image.open(io.BytesIO(png)))[..., None] for png, _ in images])
  return image_ops.model_input(pixels, np.zeros(1), IMAGE.normalization)


def _train_cnn(images):
  """A small position-aware CNN (Flatten, not pooling: a corner marker is a position)."""
  tf.keras.utils.set_random_seed(0)
  model = tf.keras.Sequential(
    [
      tf.keras.Input((SIZE, SIZE, 3)),
      tf.keras.layers.Conv2D(8, 3, activation='relu', padding='same'),
      tf.keras.layers.MaxPooling2D(2),
      tf.keras.layers.Conv2D(16, 3, activation='relu', padding='same'),
      tf.keras.layers.MaxPooling2D(2),
      tf.keras.layers.Flatten(),
      tf.keras.layers.Dense(labels.NUM_CLASSES, activation='softmax', name=model_lib.OUTPUT_NAME),
    ]
  )
  model.compile(tf.keras.optimizers.Adam(1e-3), 'sparse_categorical_crossentropy')
  model.fit(_model_input(images), np.array([y for _, y in images]), epochs=15, verbose=0)
  return model


@pytest.fixture(scope='module')
def transform_output(tmp_path_factory):
  raw = str(tmp_path_factory.mktemp('raw') / 'train.gz')
  with tf.io.TFRecordWriter(raw, options='GZIP') as writer:
    for png, label in _dataset('marker', 0, 2):
      writer.write(example_encoding.serialize(tfx_transform.raw_features(png, label)))
  return tfx_transform.run(
    {'train': raw}, str(tmp_path_factory.mktemp('transform')), IMAGE.to_config()
  )


@pytest.fixture(scope='module', params=['marker', 'lungs'])
def audited(request, transform_output, tmp_path_factory):
  """(kind, test images, Model artifact) of a CNN exported with the real signatures."""
  kind = request.param
  model = _train_cnn(_dataset(kind, 0, TRAIN_PER_CLASS))
  artifact = standard_artifacts.Model()
  artifact.uri = str(tmp_path_factory.mktemp(f'model_{kind}'))
  tf.saved_model.save(
    model,
    os.path.join(artifact.uri, 'Format-Serving'),
    signatures=signatures.make_serving_signatures(
      model, transform_output, IMAGE, 0.5, audit.Regions(), fake_cxr_model.accepting_detector()
    ),
  )
  return kind, _dataset(kind, 1, TEST_PER_CLASS), artifact


def _evaluate(tmp_path, test_images, model, **gate):
  records = [
    example_encoding.serialize(
      {features.IMAGE_KEY: png, features.LABEL_KEY: label, features.SOURCE_KEY: b'Test'}
    )
    for png, label in test_images
  ]
  examples = fake_cxr_model.examples_artifact(str(tmp_path / 'examples'), records, 'test')
  return fake_cxr_model.run_evaluator(str(tmp_path / 'run'), examples, model, **gate)


def _overall(evaluation_uri, name, output_name='', class_id=None):
  metric = results.MetricId(name, class_id=class_id, output_name=output_name)
  return results.load_metrics(evaluation_uri)[results.OVERALL][metric]


def test_a_marker_reader_is_suspected_and_not_blessed_a_lung_reader_is_blessed(audited, tmp_path):
  kind, test_images, model = audited
  evaluation_uri, blessing = _evaluate(tmp_path, test_images, model)

  # The audit's figures against scikit-learn on the signature's own outputs.
  served = tf.saved_model.load(os.path.join(model.uri, 'Format-Serving'))
  outputs = served.signatures[signatures.EVALUATION_SIGNATURE](
    examples=tf.constant(
      [example_encoding.serialize({features.IMAGE_KEY: png}) for png, _ in test_images]
    )
  )
  truth = np.array([label for _, label in test_images])
  chance = 1 / labels.NUM_CLASSES  # balanced test split
  figures = {}
  for output in ('probabilities', audit.LUNGS_HIDDEN, audit.BORDERS_HIDDEN):
    predicted = outputs[output].numpy().argmax(axis=1)
    name = '' if output == 'probabilities' else output
    accuracy = sk_metrics.accuracy_score(truth, predicted)
    assert _overall(evaluation_uri, 'argmax_accuracy', name) == pytest.approx(accuracy)
    if name:
      assert _overall(evaluation_uri, 'argmax_accuracy_above_chance', name) == pytest.approx(
        accuracy - chance
      )
      assert _overall(evaluation_uri, 'argmax_recall', name, labels.COVID) == pytest.approx(
        sk_metrics.recall_score(truth == labels.COVID, predicted == labels.COVID)
      )
    figures[name or 'served'] = accuracy

  check = next(
    c for c in results.load_gate(evaluation_uri) if c.metric.output_name == audit.LUNGS_HIDDEN
  )
  assert figures['served'] >= 0.9  # both models learned their task
  if kind == 'marker':
    assert figures[audit.LUNGS_HIDDEN] >= 0.9 and figures[audit.BORDERS_HIDDEN] < 0.5
    assert blessing.get_int_custom_property('blessed') == 0 and not check.passed
    assert report_gate.describe(check) == (
      f'lungs-hidden accuracy above chance {figures[audit.LUNGS_HIDDEN] - chance:.2f} '
      f'(no interval, {len(test_images)} images): above 0.25'
    )
    _, allowed = _evaluate(tmp_path / 'allowed', test_images, model, allow_shortcuts=True)
    assert allowed.get_int_custom_property('blessed') == 1
  else:
    assert figures[audit.LUNGS_HIDDEN] - chance <= 0.25 and figures[audit.BORDERS_HIDDEN] >= 0.9
    assert blessing.get_int_custom_property('blessed') == 1 and check.passed
