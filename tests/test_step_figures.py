"""The key figures and warnings of a step's end line, read from outputs recorded in ML Metadata
(a whole run's: test_fault_injection)."""

import json
import os

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tensorflow_metadata.proto.v0 import anomalies_pb2

from components.drift import result as drift_result
from pipeline import step_figures


def _store():
  config = metadata_store_pb2.ConnectionConfig()
  config.fake_database.SetInParent()
  return metadata_store.MetadataStore(config)


def _execution(store, outputs, event=metadata_store_pb2.Event.OUTPUT):
  """An execution with `outputs` {key: (type name, uri, custom properties)}; returns its id."""
  execution_type = store.put_execution_type(metadata_store_pb2.ExecutionType(name='Step'))
  pairs = []
  for key, (type_name, uri, custom) in outputs.items():
    artifact_type = metadata_store_pb2.ArtifactType(name=type_name)
    artifact_type.properties['split_names'] = metadata_store_pb2.STRING
    artifact = metadata_store_pb2.Artifact(type_id=store.put_artifact_type(artifact_type), uri=uri)
    artifact.properties['split_names'].string_value = '["train", "eval"]'
    for name, value in custom.items():
      field = 'int_value' if isinstance(value, int) else 'string_value'
      setattr(artifact.custom_properties[name], field, value)
    step = metadata_store_pb2.Event.Path.Step(key=key)
    pairs.append(
      (
        artifact,
        metadata_store_pb2.Event(type=event, path=metadata_store_pb2.Event.Path(steps=[step])),
      )
    )
  execution_id, _, _ = store.put_execution(
    metadata_store_pb2.Execution(type_id=execution_type), pairs, []
  )
  return execution_id


def test_quarantined_files_are_counted_and_a_warning(tmp_path):
  summary = {
    'files_found': 10,
    'image_files': 9,
    'status': {'ingested': 5, 'quarantined': 3, 'duplicate': 1, 'ignored': 1},
    'reasons': {'quarantined': {'not_an_image': 2, 'empty_file': 1}},
    'splits': {'train': {'total': 3}, 'eval': {'total': 1}, 'test': {'total': 1}},
  }
  (tmp_path / 'summary.json').write_text(json.dumps(summary))
  store = _store()
  execution = _execution(store, {'report': ('IngestReport', str(tmp_path), {})})
  figure = step_figures.figure(store, 'ImageFolderExampleGen', execution)
  assert figure.text == (
    '10 files found = 5 ingested + 3 quarantined + 1 duplicates + 1 ignored (not images); '
    'train 3, eval 1, test 1'
  )
  assert figure.images == 9
  assert figure.warnings == (
    '3 image files quarantined (not_an_image 2, empty_file 1): listed in '
    f'{tmp_path / "manifest.parquet"} and the report',
  )


def test_anomalies_are_named_per_split_and_warned_about(tmp_path):
  for split in ('train', 'eval'):
    anomalies = anomalies_pb2.Anomalies()
    if split == 'eval':
      anomalies.anomaly_info['width'].short_description = 'Out-of-range values'
    os.makedirs(tmp_path / f'Split-{split}')
    (tmp_path / f'Split-{split}' / 'SchemaDiff.pb').write_bytes(anomalies.SerializeToString())
  store = _store()
  execution = _execution(store, {'anomalies': ('ExampleAnomalies', str(tmp_path), {})})
  figure = step_figures.figure(store, 'ExampleValidator', execution)
  assert figure.text == 'anomalies: 1'
  assert figure.warnings == ('Anomaly in eval width: Out-of-range values',)


def test_drift_let_through_is_a_warning(tmp_path):
  distance = drift_result.Distance('width', 'Jensen-Shannon', 0.9, 0.5, True)
  result = drift_result.DriftResult(3, 2, (distance,), allowed=True)
  (tmp_path / drift_result.RESULT_FILE).write_text(result.to_json())
  store = _store()
  execution = _execution(store, {'report': ('DriftReport', str(tmp_path), {})})
  figure = step_figures.figure(store, 'DriftCheck', execution)
  summary = 'span 3 vs span 2 (train split): drifted, allowed: width Jensen-Shannon 0.900 > 0.5'
  assert figure.text == summary
  assert figure.warnings == (f'Drift allowed (--allow-drift): {summary}',)


def test_pusher_says_why_nothing_was_pushed_and_resolver_that_there_is_no_baseline():
  store = _store()
  pusher = _execution(store, {'pushed_model': ('PushedModel', '/nowhere', {'pushed': 0})})
  assert step_figures.figure(store, 'AtomicPusher', pusher).text == (
    'nothing pushed: the model is not blessed'
  )
  resolver = _execution(store, {}, metadata_store_pb2.Event.INTERNAL_OUTPUT)
  assert step_figures.figure(store, 'latest_blessed_model_resolver', resolver).text == (
    'no blessed model yet: no baseline'
  )
  assert step_figures.figure(store, 'StatisticsGen', resolver) is None
