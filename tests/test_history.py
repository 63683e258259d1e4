"""`cxr history`: runs read back from ML Metadata (TFX's layout of contexts, executions, events).

The store is written by hand the way TFX records runs; the evaluations are real outputs of TFX's
Evaluator on a fake model (tests/fake_cxr_model.py), so the metrics go through TFMA's readers.
"""

import json
import os

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
import numpy as np
import pytest
from tfx import v1 as tfx

import fake_cxr_model
from pipeline import cli
from pipeline import history
from pipeline import run_lock
from pipeline.output_layout import layout

GOOD = [[0.8, 0.1, 0.1], [0.1, 0.7, 0.2], [0.2, 0.2, 0.6], [0.45, 0.4, 0.15]]
WORSE = [[0.8, 0.1, 0.1], [0.1, 0.7, 0.2], [0.2, 0.2, 0.6], [0.3, 0.6, 0.1]]  # row 3 -> NORMAL
# (table row, label): GOOD misses one NORMAL image; WORSE also misses the two COVID images of row 3.
TEST_SPLIT = [(0, 0), (0, 0), (3, 0), (3, 0), (1, 1), (1, 1), (3, 1), (2, 2), (2, 2), (1, 2)]
NODES = ('ImageFolderExampleGen', 'Transform', 'Trainer', 'Evaluator', 'AtomicPusher')
COMPLETE, CACHED, FAILED = (
  metadata_store_pb2.Execution.COMPLETE,
  metadata_store_pb2.Execution.CACHED,
  metadata_store_pb2.Execution.FAILED,
)
RUNNING, NEW = metadata_store_pb2.Execution.RUNNING, metadata_store_pb2.Execution.NEW
DRIFT_SUMMARY = 'span 2 vs span 1 (train split): drifted, allowed: format L-infinity 1.000 > 0.1'


def _expected(table):
  """(accuracy, COVID recall) of a table's argmax predictions on TEST_SPLIT."""
  predicted = np.array([np.argmax(table[row]) for row, _ in TEST_SPLIT])
  actual = np.array([label for _, label in TEST_SPLIT])
  return float(np.mean(predicted == actual)), float(np.mean(predicted[actual == 0] == 0))


class _Store:
  """Writes runs into an MLMD store the way TFX's launcher records them."""

  def __init__(self, path):
    self.store = metadata_store.MetadataStore(
      tfx.orchestration.metadata.sqlite_metadata_connection_config(path)
    )
    self.run_type = self.store.put_context_type(metadata_store_pb2.ContextType(name='pipeline_run'))
    self.node_type = self.store.put_context_type(metadata_store_pb2.ContextType(name='node'))
    self.execution_type = self.store.put_execution_type(
      metadata_store_pb2.ExecutionType(name='Component')
    )
    self.nodes = {}

  def artifact(self, type_name, uri='', span=None, **custom):
    properties = {'span': metadata_store_pb2.INT} if span is not None else {}
    type_id = self.store.put_artifact_type(
      metadata_store_pb2.ArtifactType(name=type_name, properties=properties), can_add_fields=True
    )
    artifact = metadata_store_pb2.Artifact(type_id=type_id, uri=uri)
    if span is not None:
      artifact.properties['span'].int_value = span
    for key, value in custom.items():
      field = 'int_value' if isinstance(value, int) else 'string_value'
      setattr(artifact.custom_properties[key], field, value)
    [artifact.id] = self.store.put_artifacts([artifact])
    return artifact

  def run(self, run_id, steps):
    """steps: [(node, state, {key: [artifacts]} outputs, {key: [artifacts]} inputs, custom)]."""
    [run_context] = self.store.put_contexts(
      [metadata_store_pb2.Context(type_id=self.run_type, name=run_id)]
    )
    for node, state, outputs, inputs, custom in steps:
      if node not in self.nodes:
        [self.nodes[node]] = self.store.put_contexts(
          [metadata_store_pb2.Context(type_id=self.node_type, name=f'cxr-covid.{node}')]
        )
      execution = metadata_store_pb2.Execution(type_id=self.execution_type, last_known_state=state)
      for key, value in custom.items():
        execution.custom_properties[key].string_value = value
      events = []
      for event_type, artifacts_by_key in (
        (metadata_store_pb2.Event.OUTPUT, outputs),
        (metadata_store_pb2.Event.INPUT, inputs),
      ):
        for key, artifacts in artifacts_by_key.items():
          for artifact in artifacts:
            event = metadata_store_pb2.Event(type=event_type)
            event.path.steps.add().key = key
            events.append((artifact, event))
      contexts = [
        metadata_store_pb2.Context(id=run_context, type_id=self.run_type, name=run_id),
        metadata_store_pb2.Context(
          id=self.nodes[node], type_id=self.node_type, name=f'cxr-covid.{node}'
        ),
      ]
      self.store.put_execution(execution, events, contexts, reuse_context_if_already_exist=True)


@pytest.fixture(scope='module')
def output_dir(tmp_path_factory):
  """Five runs: first (blessed, pushed), the same data again (all cached), a worse candidate
  judged against the first model (not blessed), a run whose Trainer failed, and a run killed
  during its Trainer and Evaluator (TFX leaves a killed step RUNNING, or NEW if it had not
  started; here both, the Evaluator of the re-run ran while the killed run's was left)."""
  root = tmp_path_factory.mktemp('history')
  paths = layout(str(root / 'output'))
  os.makedirs(paths.root)
  examples_data = fake_cxr_model.examples_artifact(
    str(root / 'examples'),
    [fake_cxr_model.serialized_example(row, label) for row, label in TEST_SPLIT],
  )
  good = fake_cxr_model.model_artifact(str(root / 'good'), GOOD)
  worse = fake_cxr_model.model_artifact(str(root / 'worse'), WORSE)
  good_evaluation, _ = fake_cxr_model.run_evaluator(
    str(root / 'eval_good'), examples_data, good, min_accuracy=0.5, min_covid_recall=0.5
  )
  worse_evaluation, _ = fake_cxr_model.run_evaluator(
    str(root / 'eval_worse'),
    examples_data,
    worse,
    baseline=good,
    min_accuracy=0.5,
    min_covid_recall=0.5,
    max_accuracy_drop=0.0,
  )

  s = _Store(paths.metadata_path)
  examples_1 = s.artifact('Examples', span=1)
  model_1 = s.artifact('Model', good.uri)
  evaluation_1 = s.artifact('ModelEvaluation', good_evaluation)
  blessing_1 = s.artifact('ModelBlessing', blessed=1)
  pushed_1 = s.artifact('PushedModel', pushed=1, pushed_version='1767225600')
  first = [
    (
      'ImageFolderExampleGen',
      COMPLETE,
      {'examples': [examples_1]},
      {},
      {'span_selection': 'latest'},
    ),
    ('Transform', COMPLETE, {}, {'examples': [examples_1]}, {}),
    ('Trainer', COMPLETE, {'model': [model_1]}, {}, {}),
    (
      'Evaluator',
      COMPLETE,
      {'evaluation': [evaluation_1], 'blessing': [blessing_1]},
      {'model': [model_1]},
      {},
    ),
    ('AtomicPusher', COMPLETE, {'pushed_model': [pushed_1]}, {}, {}),
  ]
  s.run('run-1', first)
  s.run(
    'run-2', [(node, CACHED, outputs, inputs, custom) for node, _, outputs, inputs, custom in first]
  )
  examples_2 = s.artifact('Examples', span=2)
  model_3 = s.artifact('Model', worse.uri)
  drift_2 = s.artifact(
    'cxr.DriftReport',
    previous_span=1,
    drifted='format,width',
    accepted=1,
    summary=DRIFT_SUMMARY,
  )
  s.run(
    'run-3',
    [
      ('ImageFolderExampleGen', COMPLETE, {'examples': [examples_2]}, {}, {'span_selection': '2'}),
      ('DriftCheck', COMPLETE, {'report': [drift_2]}, {}, {}),
      ('Transform', COMPLETE, {}, {'examples': [examples_2]}, {}),
      ('Trainer', COMPLETE, {'model': [model_3]}, {'base_model': [model_1]}, {}),
      (
        'Evaluator',
        COMPLETE,
        {
          'evaluation': [s.artifact('ModelEvaluation', worse_evaluation)],
          'blessing': [s.artifact('ModelBlessing', blessed=0)],
        },
        {'model': [model_3], 'baseline_model': [model_1]},
        {},
      ),
      ('AtomicPusher', COMPLETE, {'pushed_model': [s.artifact('PushedModel', pushed=0)]}, {}, {}),
    ],
  )
  s.run(
    'run-4',
    [
      ('ImageFolderExampleGen', CACHED, {'examples': [examples_2]}, {}, {'span_selection': '2'}),
      ('Transform', CACHED, {}, {'examples': [examples_2]}, {}),
      ('Trainer', FAILED, {}, {}, {}),
    ],
  )
  s.run(
    'run-5',
    [
      ('ImageFolderExampleGen', CACHED, {'examples': [examples_2]}, {}, {'span_selection': '2'}),
      ('Trainer', RUNNING, {}, {}, {}),
      ('Evaluator', NEW, {}, {}, {}),
    ],
  )
  return paths.root, model_1.id, model_3.id


def test_runs_are_listed_oldest_first_with_their_outcome(output_dir):
  root, model_1, model_3 = output_dir
  first, same, worse, failed, killed = history.read_history(root)
  assert [r.run_id for r in (first, same, worse, failed, killed)] == [
    'run-1',
    'run-2',
    'run-3',
    'run-4',
    'run-5',
  ]

  assert (first.span, first.span_selection) == (1, 'latest')
  assert first.ran == list(NODES) and first.cached == []
  assert (first.model_id, first.baseline_model_id) == (model_1, None)
  assert (first.accuracy, first.covid_recall) == pytest.approx(_expected(GOOD))
  assert first.blessed is True and first.pushed_version == '1767225600'

  assert same.cached == list(NODES) and same.ran == []
  assert same.model_id == model_1 and same.pushed_version == '1767225600'

  assert (worse.span, worse.span_selection) == (2, '2')
  assert (worse.model_id, worse.baseline_model_id) == (model_3, model_1)
  assert (worse.accuracy, worse.covid_recall) == pytest.approx(_expected(WORSE))  # the candidate's
  assert worse.blessed is False and worse.pushed_version is None
  assert (worse.drift, worse.drift_summary) == ('allowed:format,width', DRIFT_SUMMARY)
  assert first.drift is None  # a run from before the drift check

  assert failed.cached == ['ImageFolderExampleGen', 'Transform'] and failed.failed == ['Trainer']
  assert failed.model_id is None and failed.accuracy is None and failed.blessed is None
  assert [r.interrupted for r in (first, same, worse, failed)] == [[]] * 4

  assert killed.cached == ['ImageFolderExampleGen'] and killed.ran == [] and killed.failed == []
  assert killed.interrupted == ['Trainer', 'Evaluator']


def test_unfinished_steps_of_the_newest_run_are_running_while_a_run_holds_the_lock(output_dir):
  root, _, _ = output_dir
  with run_lock.hold(root):
    records = history.read_history(root)
  assert records[-1].run_id == 'run-5' and records[-1].interrupted == []
  assert history.read_history(root)[-1].interrupted == ['Trainer', 'Evaluator']


def test_table_has_one_line_per_run(output_dir):
  root, model_1, model_3 = output_dir
  lines = history.format_table(history.read_history(root)).splitlines()
  assert lines[0].split() == [
    'run',
    'started',
    'span',
    'ran',
    'cached',
    'model',
    'baseline',
    'accuracy',
    'covid_recall',
    'blessed',
    'pushed',
    'drift',
    'failed',
    'interrupted',
  ]
  worse = lines[3].split()
  assert worse[0] == 'run-3' and worse[2:7] == ['2', '6', '0', str(model_3), str(model_1)]
  assert worse[7] == f'{_expected(WORSE)[0]:.3f}'
  assert worse[9:] == ['no', '-', 'allowed:format,width', '-', '-']
  assert lines[4].split()[-2:] == ['Trainer', '-']
  assert lines[5].split()[0] == 'run-5' and lines[5].split()[-3:] == ['-', 'Trainer,', 'Evaluator']


def test_cli_prints_json_and_reports_a_missing_store(output_dir, tmp_path, capsys):
  root, _, _ = output_dir
  assert cli.main(['history', '--output', root, '--json']) == 0
  records = json.loads(capsys.readouterr().out)
  assert [r['run_id'] for r in records] == ['run-1', 'run-2', 'run-3', 'run-4', 'run-5']
  assert records[4]['interrupted'] == ['Trainer', 'Evaluator'] and records[3]['interrupted'] == []
  assert records[2]['blessed'] is False and records[0]['pushed_version'] == '1767225600'
  assert cli.main(['history', '--output', str(tmp_path / 'nothing')]) == 2
  assert 'No metadata store at' in capsys.readouterr().err
