"""Test helpers: a tiny SavedModel with the project's serving signatures, raw tf.Examples, and
a direct run of TFX's Evaluator executor on them.

The fake model reads an image's mean brightness as a row index into a fixed probability table, so
a test chooses each example's predicted probabilities through the gray level of a 4x4 PNG. Given
an operating point, it also returns `covid_positive` and stores the point as the Trainer does.
Its `evaluation_examples` signature adds the masking audit's outputs: a model that reads the lungs
(the default) answers uniform probabilities with the lungs hidden and as served with the borders
hidden; a shortcut model (reads_lungs=False) the other way round. It can also have an `explain`
signature whose 8x8 heatmap is hot (1) in one quadrant, chosen by the row.
"""

import io
import os
from typing import Optional, Sequence

import numpy as np
from PIL import Image
import tensorflow as tf
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.utils import json_utils
from tfx.utils import proto_utils

from components import audit
from components import features
from components import labels
from components import ood
from components import operating_point
from components import signatures
from components.evaluation import eval_config as eval_config_lib
from components.evaluation.gate import Gate
from pipeline import beam_args

GRAY_STEP = 8  # gray level of table row i: i * GRAY_STEP


def accepting_detector() -> ood.Detector:
  """Energy and appearance scores with infinite thresholds: every image is in distribution."""
  side = ood.APPEARANCE_SIDE**2
  return ood.Detector('energy', ood.Gaussians(np.zeros((1, side)), np.eye(side)))


def png_for_row(row: int) -> bytes:
  """A 4x4 grayscale PNG that the fake model maps to table row `row`."""
  buffer = io.BytesIO()
  Image.fromarray(np.full((4, 4), row * GRAY_STEP, dtype=np.uint8)).save(buffer, format='PNG')
  return buffer.getvalue()


def quadrant_heatmaps() -> np.ndarray:
  """float32 [4, 8, 8]: heatmap i is 1 in quadrant i (top left, top right, bottom left, bottom
  right), 0 elsewhere; the fake `explain` gives table row r heatmap r % 4."""
  heatmaps = np.zeros((4, 8, 8), np.float32)
  for i in range(4):
    heatmaps[i, (i // 2) * 4 : (i // 2 + 1) * 4, (i % 2) * 4 : (i % 2 + 1) * 4] = 1.0
  return heatmaps


class _TableModel(tf.Module):
  """probabilities = table[round(mean gray / GRAY_STEP)]; covid_positive = P(COVID) > threshold
  (None: no covid_positive output); ood_score = mean gray / GRAY_STEP, appearance_score = twice
  that, in_distribution = ood_score <= ood_threshold (None: none of the three outputs)."""

  def __init__(
    self,
    table: np.ndarray,
    covid_threshold: Optional[float],
    ood_threshold: Optional[float],
    reads_lungs: bool,
  ):
    super().__init__()
    self.table = tf.constant(table, dtype=tf.float32)
    self.class_names = tf.constant(labels.CLASS_NAMES)
    self.covid_threshold = covid_threshold
    self.ood_threshold = ood_threshold
    self.reads_lungs = reads_lungs

  def _steps_and_rows(self, images: tf.Tensor):
    def gray_steps(encoded):
      image = tf.io.decode_image(encoded, channels=1, expand_animations=False)
      return tf.reduce_mean(tf.cast(image, tf.float32)) / GRAY_STEP

    steps = tf.map_fn(gray_steps, images, fn_output_signature=tf.float32)
    rows = tf.minimum(tf.cast(tf.round(steps), tf.int32), tf.shape(self.table)[0] - 1)
    return steps, rows

  def _outputs(self, images: tf.Tensor):
    steps, rows = self._steps_and_rows(images)
    probabilities = tf.gather(self.table, rows)
    class_id = tf.argmax(probabilities, axis=-1)
    outputs = {
      'probabilities': probabilities,
      'class_id': class_id,
      'class_name': tf.gather(self.class_names, class_id),
    }
    if self.covid_threshold is not None:
      outputs['covid_positive'] = tf.cast(probabilities[:, 0], tf.float64) > self.covid_threshold
    if self.ood_threshold is not None:
      outputs['ood_score'] = steps
      outputs['appearance_score'] = 2 * steps
      outputs['in_distribution'] = steps <= self.ood_threshold
    return outputs

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='image_bytes')])
  def serve_images(self, image_bytes):
    return self._outputs(image_bytes)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='examples')])
  def serve_examples(self, examples):
    parsed = tf.io.parse_example(
      examples, {features.IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)}
    )
    return self._outputs(parsed[features.IMAGE_KEY])

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='examples')])
  def evaluate_examples(self, examples):
    outputs = self.serve_examples(examples)
    uninformed = tf.fill(tf.shape(outputs['probabilities']), 1.0 / labels.NUM_CLASSES)
    informed = outputs['probabilities']
    outputs[audit.LUNGS_HIDDEN] = uninformed if self.reads_lungs else informed
    outputs[audit.BORDERS_HIDDEN] = informed if self.reads_lungs else uninformed
    return outputs

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='image_bytes')])
  def explain(self, image_bytes):
    _, rows = self._steps_and_rows(image_bytes)
    probabilities = tf.gather(self.table, rows)
    return {
      'probabilities': probabilities,
      'class_id': tf.argmax(probabilities, axis=-1),
      'heatmap': tf.gather(tf.constant(quadrant_heatmaps()), rows % 4),
    }


def save_model(
  export_dir: str,
  table: Sequence[Sequence[float]],
  point: Optional[operating_point.OperatingPoint] = None,
  reads_lungs: bool = True,
  explain: bool = False,
  ood_threshold: Optional[float] = None,
) -> str:
  """Saves a fake model with `serving_default`, `serving_examples` and `evaluation_examples`
  (with `covid_positive` and the stored operating point when `point` is given, `ood_score` and
  `in_distribution` when `ood_threshold` is, and `explain` if asked); returns export_dir."""
  model = _TableModel(
    np.asarray(table, dtype=np.float32),
    point.threshold if point else None,
    ood_threshold,
    reads_lungs,
  )
  model_signatures = {
    'serving_default': model.serve_images,
    'serving_examples': model.serve_examples,
    signatures.EVALUATION_SIGNATURE: model.evaluate_examples,
  }
  if explain:
    model_signatures['explain'] = model.explain
  tf.saved_model.save(model, export_dir, signatures=model_signatures)
  if point:
    operating_point.write(point, export_dir)
  return export_dir


def serialized_example(row: int, label: int, source: str = 'Test', **subgroups: str) -> bytes:
  """A raw tf.Example (image, label, source, and any `subgroups` features, e.g.
  view_position='PA') whose image maps to table row `row`."""
  feature = {
    features.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[png_for_row(row)])),
    features.LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    features.SOURCE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[source.encode()])),
  }
  for key, value in subgroups.items():
    feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_split(examples_uri: str, split: str, records: Sequence[bytes]) -> None:
  """Writes records as ingestion does: TFRecords in `examples_uri/Split-<split>/`."""
  split_dir = os.path.join(examples_uri, f'Split-{split}')
  os.makedirs(split_dir, exist_ok=True)
  path = os.path.join(split_dir, 'data_tfrecord-00000-of-00001')
  with tf.io.TFRecordWriter(path) as writer:
    for record in records:
      writer.write(record)


def examples_artifact(uri: str, records: Sequence[bytes], split: str = 'test'):
  """An Examples artifact with one split holding `records`."""
  examples = standard_artifacts.Examples()
  examples.uri = uri
  examples.split_names = artifact_utils.encode_split_names([split])
  write_split(uri, split, records)
  return examples


def model_artifact(
  uri: str,
  table: Sequence[Sequence[float]],
  point: Optional[operating_point.OperatingPoint] = None,
  reads_lungs: bool = True,
  explain: bool = False,
):
  """A Model artifact whose Format-Serving folder holds a fake model (see save_model)."""
  model = standard_artifacts.Model()
  model.uri = uri
  save_model(os.path.join(uri, 'Format-Serving'), table, point, reads_lungs, explain)
  return model


def run_evaluator(work_dir: str, examples, model, baseline=None, **gate):
  """Runs TFX's Evaluator executor (Beam in memory) with make_eval_config(Gate(**gate)) on the
  'test' split; returns (evaluation uri, blessing artifact)."""
  evaluation = standard_artifacts.ModelEvaluation()
  evaluation.uri = os.path.join(work_dir, 'evaluation')
  blessing = standard_artifacts.ModelBlessing()
  blessing.uri = os.path.join(work_dir, 'blessing')
  os.makedirs(blessing.uri)
  inputs = {'examples': [examples], 'model': [model]}
  if baseline is not None:
    inputs['baseline_model'] = [baseline]
  executor = evaluator_executor.Executor(
    base_beam_executor.BaseBeamExecutor.Context(
      beam_pipeline_args=beam_args.compose('direct', ['--direct_running_mode=in_memory']),
      tmp_dir=os.path.join(work_dir, 'tmp'),
    )
  )
  executor.Do(
    inputs,
    {'evaluation': [evaluation], 'blessing': [blessing]},
    {
      'eval_config': proto_utils.proto_to_json(eval_config_lib.make_eval_config(Gate(**gate))),
      'example_splits': json_utils.dumps(['test']),
    },
  )
  return evaluation.uri, blessing
