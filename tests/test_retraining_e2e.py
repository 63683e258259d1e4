"""End to end, retraining over spans: splits, caching, warm start, the baseline, gate, push and
the drift gate.

One output folder, four runs (a module fixture; the tests read what each run left behind):
  1. span-1 (LocalDagRunner): split, trained, blessed, pushed as the first version, which
     serves raw PNG bytes;
  2. span-2 added, its Train/ class folders permuted (mislabelled training data; Test/ intact),
     BeamDagRunner, warm start: ingestion re-runs; the candidate is warm-started from and judged
     against run 1's model and fails the gate: not pushed, the served version stays;
  3. span-2 again under a loose rule (any accuracy, any drop): every step before the Evaluator is
     reused (the candidate is run 2's, from the cache); the Evaluator and the pusher re-run, the
     baseline is still run 1's model (run 2's was not blessed), the candidate passes: a new
     version is pushed;
  4. span-3 added, rescanned (twice the size, brighter, JPEG and 16-bit PNG): the drift gate
     stops the run before the Transform, naming the drifted features; nothing is pushed.

The models are ResNet50V2s (the smallest backbone; ResNet152V2 saves and loads ~3-4x slower and
changes nothing here). Why the gate decides deterministically: tiny ResNets trained from scratch
for one epoch never get usable BatchNorm statistics, so at inference they predict (nearly) one
class: an accuracy near 1/3 on the balanced test split, and no reliable ranking between two of them.
So the thresholds, not the luck of training, decide: run 2 needs accuracy >= 0.5 and no drop
versus the baseline (fails), runs 1 and 3 accept anything (pass). The baseline comparison is
checked through the accuracy difference TFMA records.
"""

import glob
import json
import os

from ml_metadata.proto import metadata_store_pb2
import numpy as np
import pytest
import tensorflow as tf

from components import demo_data
from components import labels
from components import trainer
from components.drift.component import SpanDrifted
from components.evaluation import eval_config as eval_config_lib
from components.evaluation import results
from components.evaluation.gate import Gate
from components.image_spec import ImageSpec
from components.pusher import versioned_dir
from pipeline import beam_args
from pipeline import beam_runner
from pipeline import history
from pipeline import local_runner
from pipeline import metadata_queries
from pipeline.output_layout import layout
from pipeline.run_options import RunOptions
import rescanned

pytestmark = pytest.mark.e2e

TRAIN_PER_CLASS, TEST_PER_CLASS = 8, 4
LOOSE = dict(min_accuracy=0.0, min_covid_recall=0.0, max_accuracy_drop=1.0)
STRICT = dict(min_accuracy=0.5, min_covid_recall=0.0, max_accuracy_drop=0.0)


def _options(data_root, output_dir, warm_start, gate):
  return RunOptions(
    data_root=data_root,
    output_dir=output_dir,
    image=ImageSpec(size=32),
    warm_start=warm_start,
    hparam_overrides={'backbone': 'resnet50v2', 'weights': 'none', 'epochs': 1, 'batch_size': 8},
    beam_pipeline_args=beam_args.compose('direct', ['--direct_running_mode=in_memory']),
    gate=Gate(**gate),
  )


def _add_span(data_root, number, permute_train_labels=False, rescan=False):
  span = os.path.join(data_root, f'span-{number}')
  demo_data.generate(
    span,
    train_per_class=TRAIN_PER_CLASS,
    test_per_class=TEST_PER_CLASS,
    seed=number,
    min_size=48,
    max_size=64,
  )
  if rescan:
    rescanned.rescan(span)
  if permute_train_labels:  # COVID images become NORMAL, NORMAL become VIRAL PNEUMONIA, ...
    train = os.path.join(span, 'Train')
    for name in labels.CLASS_NAMES:
      os.rename(os.path.join(train, name), os.path.join(train, name + '.tmp'))
    for i, name in enumerate(labels.CLASS_NAMES):
      os.rename(
        os.path.join(train, name + '.tmp'),
        os.path.join(train, labels.CLASS_NAMES[(i + 1) % labels.NUM_CLASSES]),
      )


def _evaluator_details(output_dir, run_id):
  """(baseline model ids, Trainer base_model ids, evaluation uri) recorded for a run."""
  with metadata_queries.open_store(layout(output_dir)) as store:
    executions = dict(metadata_queries.node_executions(store, run_id))

    def inputs(node, key):
      return [
        a.id
        for a in metadata_queries.execution_artifacts(
          store, executions[node].id, key, metadata_store_pb2.Event.INPUT
        )
      ]

    [evaluation] = metadata_queries.execution_artifacts(
      store, executions['Evaluator'].id, 'evaluation'
    )
    return inputs('Evaluator', 'baseline_model'), inputs('Trainer', 'base_model'), evaluation.uri


def _examples_uri(output_dir, run_id):
  with metadata_queries.open_store(layout(output_dir)) as store:
    executions = dict(metadata_queries.node_executions(store, run_id))
    [examples] = metadata_queries.execution_artifacts(
      store, executions['ImageFolderExampleGen'].id, 'examples'
    )
    return examples.uri


def _count_examples(split_dir):
  files = glob.glob(os.path.join(split_dir, 'data_tfrecord-*'))
  return sum(1 for _ in tf.data.TFRecordDataset(files))


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """Runs the four runs; returns {name: (history record, served versions, evaluator details)},
  with 'history' (every record) and 'paths' ((data root, output folder))."""
  data_root = str(tmp_path_factory.mktemp('data'))
  output_dir = str(tmp_path_factory.mktemp('output'))
  serving_dir = layout(output_dir).serving_dir
  plan = [
    ('first', lambda: _add_span(data_root, 1), local_runner, False, LOOSE),
    (
      'mislabelled',
      lambda: _add_span(data_root, 2, permute_train_labels=True),
      beam_runner,
      True,
      STRICT,
    ),
    ('looser_gate', lambda: None, local_runner, True, LOOSE),
    ('drifted', lambda: _add_span(data_root, 3, rescan=True), local_runner, True, LOOSE),
  ]
  found = {}
  for name, prepare, runner, warm_start, gate in plan:
    prepare()
    options = _options(data_root, output_dir, warm_start, gate)
    if name == 'drifted':
      with pytest.raises(SpanDrifted) as stopped:
        runner.run(options)
      found['drift_error'] = str(stopped.value)
    else:
      runner.run(options)
    record = history.read_history(output_dir)[-1]
    found[name] = (
      record,
      [str(v) for v in versioned_dir.versions(serving_dir)],
      None if name == 'drifted' else _evaluator_details(output_dir, record.run_id),
    )
  found['history'] = history.read_history(output_dir)
  found['paths'] = data_root, output_dir
  return found


def test_first_run_is_blessed_and_pushed(runs):
  record, versions, (baseline, base_model, _) = runs['first']
  assert record.span == 1 and record.span_selection == 'latest'
  assert record.cached == [] and 'Trainer' in record.ran and 'Evaluator' in record.ran
  assert record.blessed is True
  assert versions == [record.pushed_version]
  assert baseline == [] and base_model == []  # nothing blessed yet: no baseline, no warm start


def test_split_counts_match_the_files(runs):
  record, _, _ = runs['first']
  examples_uri = _examples_uri(runs['paths'][1], record.run_id)
  counts = {
    split: _count_examples(os.path.join(examples_uri, f'Split-{split}'))
    for split in ('train', 'eval', 'test')
  }
  assert counts['test'] == TEST_PER_CLASS * labels.NUM_CLASSES
  assert counts['train'] + counts['eval'] == TRAIN_PER_CLASS * labels.NUM_CLASSES
  assert counts['eval'] > 0 and counts['train'] > counts['eval']


def test_pushed_model_serves_raw_png_bytes(runs):
  record, _, _ = runs['first']
  data_root, output_dir = runs['paths']
  version_dir = os.path.join(layout(output_dir).serving_dir, str(record.pushed_version))
  model = tf.saved_model.load(version_dir)
  png = sorted(glob.glob(os.path.join(data_root, 'span-1', 'Test', 'COVID', '*.png')))[0]
  with open(png, 'rb') as f:
    outputs = model.signatures['serving_default'](image_bytes=tf.constant([f.read()]))
  probabilities = outputs['probabilities'].numpy()
  assert probabilities.shape == (1, labels.NUM_CLASSES)
  np.testing.assert_allclose(probabilities.sum(), 1.0, rtol=1e-5)
  class_id = int(outputs['class_id'].numpy()[0])
  assert class_id == int(np.argmax(probabilities))
  assert outputs['class_name'].numpy()[0].decode() == labels.CLASS_NAMES[class_id]
  with open(os.path.join(version_dir, trainer.CALIBRATION_ASSET)) as f:  # travels with the model
    assert json.load(f)['temperature'] > 0


def test_mislabelled_span_is_judged_against_the_first_model_and_not_pushed(runs):
  first, _, _ = runs['first']
  record, versions, (baseline, base_model, _) = runs['mislabelled']
  assert record.span == 2
  assert {'ImageFolderExampleGen', 'Transform', 'Trainer', 'Evaluator'} <= set(record.ran)
  assert 'ImportSchemaGen' in record.cached  # the schema did not change
  assert record.model_id != first.model_id
  assert baseline == [first.model_id]
  assert base_model == [first.model_id]  # warm-started from the blessed model
  assert record.accuracy < STRICT['min_accuracy'], 'the determinism premise (see docstring) broke'
  assert record.blessed is False
  assert record.pushed_version is None
  assert versions == runs['first'][1]  # the served version stays


def test_baseline_comparison_is_recorded(runs):
  _, _, (_, _, evaluation_uri) = runs['mislabelled']
  eval_config = results.load_eval_config(evaluation_uri)
  candidate, baseline = results.model_names(eval_config)
  assert baseline is not None
  overall = results.load_metrics(evaluation_uri)[results.OVERALL]
  accuracy = results.MetricId(eval_config_lib.ACCURACY, model_name=candidate)
  difference = overall[accuracy._replace(is_diff=True)]
  assert difference == pytest.approx(
    overall[accuracy] - overall[accuracy._replace(model_name=baseline)]
  )


def test_passing_the_gate_pushes_a_new_version(runs):
  first, _, _ = runs['first']
  mislabelled, served_before, _ = runs['mislabelled']
  record, versions, (baseline, _, _) = runs['looser_gate']
  before_the_model = {
    'ImageFolderExampleGen',
    'StatisticsGen',
    'ImportSchemaGen',
    'ExampleValidator',
    'Transform',
    'Trainer',
  }
  assert before_the_model <= set(record.cached) and not before_the_model & set(record.ran)
  assert {'Evaluator', 'AtomicPusher'} <= set(record.ran)
  assert record.model_id == mislabelled.model_id
  assert baseline == [first.model_id]  # run 2's model was not blessed: not a baseline
  assert record.blessed is True
  assert versions == served_before + [record.pushed_version]  # a new, later version


def test_history_lists_every_run_in_order(runs):
  records = runs['history']
  assert [r.run_id for r in records] == [
    runs[name][0].run_id for name in ('first', 'mislabelled', 'looser_gate', 'drifted')
  ]
  assert [r.blessed for r in records] == [True, False, True, None]
  assert [r.span for r in records] == [1, 2, 2, 3]
  assert [r.drift.split(':')[0] for r in records] == ['first', 'none', 'none', 'stopped']
  table = history.format_table(records).splitlines()
  assert len(table) == 1 + len(records)
  assert table[2].split()[0] == records[1].run_id and ' no ' in table[2]


def test_a_drifted_span_stops_before_the_transform_and_pushes_nothing(runs):
  record, versions, _ = runs['drifted']
  assert record.span == 3 and record.failed == ['DriftGate']
  assert not {'Transform', 'Trainer', 'Evaluator', 'AtomicPusher'} & set(record.ran)
  assert versions == runs['looser_gate'][1]  # nothing pushed
  message = runs['drift_error']
  assert message.startswith('Span 3 drifted from span 2 (train split): ')
  drifted = set(record.drift.removeprefix('stopped:').split(','))
  assert {'format', 'width', 'height', 'bit_depth', 'intensity_mean'} <= drifted
  for feature in drifted:
    assert f'{feature} ' in message
  assert record.drift_summary == message
