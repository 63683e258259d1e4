"""ImageFolderExampleGen under LocalDagRunner (artifacts, caching by the input fingerprint TFX's
ExampleGen driver computes when the step runs) and the raw schema under TFDV."""

import os
import re
import shutil

from google.protobuf import text_format
import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import v1 as tfx
from tfx.types import artifact_utils

from components import demo_data
from components.ingestion.component import ImageFolderExampleGen
from pipeline import cli
from pipeline import configs
from pipeline import metadata_queries
from pipeline.output_layout import layout

SCHEMA_PATH = os.path.join(configs.SCHEMA_DIR, 'schema.pbtxt')
COMPLETE = metadata_store_pb2.Execution.COMPLETE
CACHED = metadata_store_pb2.Execution.CACHED


def _run_pipeline(data, root, **ingest_config):
  """Runs the component alone in a pipeline kept under `root`; returns its Examples and reports,
  oldest first."""
  example_gen = ImageFolderExampleGen(
    input_base=str(data), split_ratios='0.7,0.15,0.15', **ingest_config
  )
  metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(
    str(root / 'metadata.sqlite')
  )
  tfx.orchestration.LocalDagRunner().run(
    tfx.dsl.Pipeline(
      pipeline_name='ingestion-test',
      pipeline_root=str(root / 'pipeline'),
      components=[example_gen],
      enable_cache=True,
      metadata_connection_config=metadata,
      beam_pipeline_args=['--runner=FnApiRunner'],
    )
  )
  store = mlmd.MetadataStore(metadata)
  return store.get_artifacts_by_type('Examples'), store.get_artifacts_by_type('cxr.IngestReport')


def _states(root):
  """The last_known_state of each ingestion execution, oldest first."""
  store = mlmd.MetadataStore(
    tfx.orchestration.metadata.sqlite_metadata_connection_config(str(root / 'metadata.sqlite'))
  )
  return [e.last_known_state for e in sorted(store.get_executions(), key=lambda e: e.id)]


def _schema(text_edit=None) -> schema_pb2.Schema:
  with open(SCHEMA_PATH) as f:
    text = f.read()
  return text_format.Parse(text_edit(text) if text_edit else text, schema_pb2.Schema())


def test_component_writes_examples_and_report_and_reruns_only_when_files_change(tmp_path):
  data = tmp_path / 'data'
  demo_data.generate(str(data), train_per_class=5, test_per_class=2, min_size=32, max_size=40)
  examples, reports = _run_pipeline(data, tmp_path)
  assert len(examples) == len(reports) == 1
  example_artifact = examples[0]
  assert artifact_utils.decode_split_names(
    example_artifact.properties['split_names'].string_value
  ) == ['train', 'eval', 'test']
  assert example_artifact.properties['span'].int_value == 0
  assert example_artifact.custom_properties['file_format'].string_value == 'tfrecords_gzip'
  for split in ('train', 'eval', 'test'):
    files = os.listdir(os.path.join(example_artifact.uri, f'Split-{split}'))
    assert files and all(
      re.fullmatch(r'data_tfrecord-\d{5}-of-\d{5}', f) for f in files
    )  # uncompressed
  report = reports[0].custom_properties
  assert {k: report[k].int_value for k in ('files_found', 'ingested', 'test_examples')} == {
    'files_found': 21,
    'ingested': 21,
    'test_examples': 6,
  }
  assert sorted(os.listdir(reports[0].uri)) == ['manifest.parquet', 'summary.json']

  assert example_artifact.custom_properties['input_fingerprint'].string_value.startswith(
    'split:depth-1,num_files:2,'
  )  # Train/ and Test/, fingerprinted by TFX's FileBasedDriver

  examples, _ = _run_pipeline(data, tmp_path)
  assert len(examples) == 1  # same files, same fingerprint: the cached execution is reused
  assert _states(tmp_path) == [COMPLETE, CACHED]
  os.remove(data / 'Train' / 'COVID' / 'covid_0004.png')
  examples, reports = _run_pipeline(data, tmp_path)
  assert len(examples) == 2 and reports[-1].custom_properties['files_found'].int_value == 20
  assert _states(tmp_path) == [COMPLETE, CACHED, COMPLETE]

  stats = tfdv.generate_statistics_from_tfrecord(
    os.path.join(examples[-1].uri, 'Split-*', 'data_tfrecord-*')
  )
  anomalies = tfdv.validate_statistics(stats, _schema())
  assert not anomalies.anomaly_info, anomalies
  narrower = _schema(lambda text: text.replace('  value: "VIRAL PNEUMONIA"\n', ''))
  assert (
    'label_name' in tfdv.validate_statistics(stats, narrower).anomaly_info
  )  # the check can fail


def test_a_new_span_or_a_changed_file_of_it_reruns_ingestion(tmp_path):
  data = tmp_path / 'data'
  demo_data.generate(
    str(data / 'span-1'), train_per_class=3, test_per_class=2, min_size=32, max_size=36
  )
  for folder, _, names in os.walk(data):  # a change now shows in the seconds the driver hashes
    for path in [folder] + [os.path.join(folder, n) for n in names]:
      os.utime(path, (1_000_000_000, 1_000_000_000))
  _run_pipeline(data, tmp_path)
  shutil.copytree(data / 'span-1', data / 'span-2')
  _run_pipeline(data, tmp_path)
  examples, _ = _run_pipeline(data, tmp_path)
  os.utime(data / 'span-2' / 'Test' / 'COVID' / 'covid_0000.png')  # rewritten in place
  examples, _ = _run_pipeline(data, tmp_path)
  assert _states(tmp_path) == [COMPLETE, COMPLETE, CACHED, COMPLETE]
  assert [e.properties['span'].int_value for e in examples] == [1, 2, 2]
  assert [e.custom_properties['span'].int_value for e in examples] == [1, 2, 2]


def test_cxr_run_stops_at_ingestion_when_a_split_lacks_a_class(tmp_path, capsys):
  data = tmp_path / 'data'
  demo_data.generate(str(data), train_per_class=5, test_per_class=2, min_size=32, max_size=40)
  shutil.rmtree(data / 'Test' / 'VIRAL PNEUMONIA')
  status = cli.main(['run', '--data', str(data), '--output', str(tmp_path / 'out'), '--demo'])
  assert status == 2
  error = capsys.readouterr().err
  assert error.endswith('\n') and error.count('\n') == 1, error  # one line, no traceback
  assert error.startswith(
    'cxr run: error: Every split needs images of every class, but test lacks VIRAL PNEUMONIA '
    '(images per class: train COVID 4, NORMAL 4, VIRAL PNEUMONIA 4; eval COVID 1, NORMAL 1, '
    'VIRAL PNEUMONIA 1; test COVID 2, NORMAL 2, VIRAL PNEUMONIA 0). Add images'
  )
  with metadata_queries.open_store(layout(str(tmp_path / 'out'))) as store:
    [run_id] = metadata_queries.run_ids(store)
    ran = [
      (node, execution.last_known_state)
      for node, execution in metadata_queries.node_executions(store, run_id)
    ]
  assert ran == [('ImageFolderExampleGen', metadata_store_pb2.Execution.FAILED)]  # nothing after it
