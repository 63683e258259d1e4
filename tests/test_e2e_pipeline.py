"""End to end: the whole TFX pipeline under LocalDagRunner on a tiny generated dataset."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from components import demo_data
from components import labels
from components.evaluation.gate import Gate
from components.image_spec import ImageSpec
from components.pusher import versioned_dir
from pipeline import local_runner
from pipeline import metadata_queries
from pipeline.output_layout import layout
from pipeline.run_options import RunOptions

pytestmark = pytest.mark.e2e

TRAIN_PER_CLASS, TEST_PER_CLASS = 10, 4


def _count_examples(split_dir):
  files = glob.glob(os.path.join(split_dir, 'data_tfrecord-*'))
  return sum(1 for _ in tf.data.TFRecordDataset(files))


def _options(data_root, output_dir, **gate):
  return RunOptions(
    data_root=data_root,
    output_dir=output_dir,
    image=ImageSpec(size=32),
    hparam_overrides={'weights': 'none', 'epochs': 2, 'batch_size': 8},
    beam_pipeline_args=['--direct_running_mode=in_memory'],
    gate=Gate(**gate),
  )


@pytest.fixture(scope='module')
def first_run(tmp_path_factory):
  """Runs the pipeline once with a gate every model passes."""
  data_root = str(tmp_path_factory.mktemp('data'))
  demo_data.generate(
    data_root,
    train_per_class=TRAIN_PER_CLASS,
    test_per_class=TEST_PER_CLASS,
    seed=3,
    min_size=64,
    max_size=96,
  )
  output_dir = str(tmp_path_factory.mktemp('output'))
  local_runner.run(_options(data_root, output_dir, min_accuracy=0.0, min_covid_recall=0.0))
  return data_root, output_dir


def _latest_run_outputs(output_dir, node_id, key):
  with metadata_queries.open_store(layout(output_dir)) as store:
    run_id = metadata_queries.run_ids(store)[-1]
    return [
      artifact
      for node, execution in metadata_queries.node_executions(store, run_id)
      if node == node_id
      for artifact in metadata_queries.execution_artifacts(store, execution.id, key)
    ]


def test_split_counts_match_the_files(first_run):
  _, output_dir = first_run
  (examples,) = _latest_run_outputs(output_dir, 'ImageFolderExampleGen', 'examples')
  counts = {
    split: _count_examples(os.path.join(examples.uri, f'Split-{split}'))
    for split in ('train', 'eval', 'test')
  }
  assert counts['test'] == TEST_PER_CLASS * labels.NUM_CLASSES
  assert counts['train'] + counts['eval'] == TRAIN_PER_CLASS * labels.NUM_CLASSES
  assert counts['eval'] > 0 and counts['train'] > counts['eval']


def test_blessed_model_is_pushed_and_serves_raw_png(first_run):
  data_root, output_dir = first_run
  (blessing,) = _latest_run_outputs(output_dir, 'Evaluator', 'blessing')
  assert metadata_queries.custom_property(blessing, 'blessed') == 1
  serving_dir = layout(output_dir).serving_dir
  assert len(versioned_dir.versions(serving_dir)) == 1
  model = tf.saved_model.load(versioned_dir.latest_version_dir(serving_dir))
  png = sorted(glob.glob(os.path.join(data_root, 'Test', 'COVID', '*.png')))[0]
  with open(png, 'rb') as f:
    outputs = model.signatures['serving_default'](image_bytes=tf.constant([f.read()]))
  probabilities = outputs['probabilities'].numpy()
  assert probabilities.shape == (1, labels.NUM_CLASSES)
  np.testing.assert_allclose(probabilities.sum(), 1.0, rtol=1e-5)
  class_id = int(outputs['class_id'].numpy()[0])
  assert class_id == int(np.argmax(probabilities))
  assert outputs['class_name'].numpy()[0].decode() == labels.CLASS_NAMES[class_id]


def test_model_under_threshold_is_not_pushed(first_run):
  data_root, output_dir = first_run
  serving_dir = layout(output_dir).serving_dir
  before = versioned_dir.versions(serving_dir)
  # A tiny model trained from scratch for 2 epochs is far from perfect on the test split.
  local_runner.run(_options(data_root, output_dir, min_accuracy=1.0, min_covid_recall=1.0))
  (blessing,) = _latest_run_outputs(output_dir, 'Evaluator', 'blessing')
  assert metadata_queries.custom_property(blessing, 'blessed') == 0
  assert versioned_dir.versions(serving_dir) == before
