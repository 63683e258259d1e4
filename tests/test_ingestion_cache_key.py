"""The input fingerprint of ImageFolderExampleGen on Kubeflow v2: TFX's ExampleGen driver run as
the compiled `preCacheCheck` hook runs it, on the compiled task's parameters."""

import json
import os
import shutil

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
import pytest
from tfx.orchestration.kubeflow.v2 import compiler_utils
from tfx.orchestration.kubeflow.v2.file_based_example_gen import driver
from tfx.types import standard_artifacts

from components import demo_data
from components.ingestion import cache_key
from components.ingestion.component import ImageFolderExampleGen
from components.ingestion.options import IngestOptions
from pipeline import kubeflow_v2_runner
from pipeline import pipeline as pipeline_lib
from pipeline.run_options import RunOptions

DATA = 'gs://my-bucket/data'
LONG_AGO = 1_000_000_000  # seconds: the driver hashes whole seconds of modification time


@pytest.fixture(scope='module')
def compiled(tmp_path_factory):
  """The ingestion task's parameters and its preCacheCheck hook; the metadata CSV is in DATA."""
  options = RunOptions(
    data_root=DATA,
    output_dir='gs://my-bucket/cxr',
    ingest=IngestOptions(metadata_csv=f'{DATA}/meta.csv'),
  )
  path = tmp_path_factory.mktemp('kfp') / 'cxr.json'
  spec = kubeflow_v2_runner.compile_pipeline(options, str(path))['pipelineSpec']
  task = spec['root']['dag']['tasks'][pipeline_lib.INGESTION]
  executor = spec['deploymentSpec']['executors'][f'{pipeline_lib.INGESTION}_executor']
  parameters = {
    name: p['runtimeValue']['constantValue'] for name, p in task['inputs']['parameters'].items()
  }
  return parameters, executor['container']['lifecycle']['preCacheCheck']


def _hook(compiled, input_base, tmp_path):
  """The parameters the hook hands KFP for the data at the local `input_base`: KFP's invocation
  of the compiled task, with input_base replaced, substituted for '{{$}}' in the hook's args."""
  parameters, hook = compiled
  invocation = pipeline_spec_pb2.ExecutorInput()
  for name, value in parameters.items():
    json_format.ParseDict(value, invocation.inputs.parameters[name])
  invocation.inputs.parameters['input_base'].string_value = str(input_base)
  examples = invocation.outputs.artifacts['examples'].artifacts.add()
  examples.type.instance_schema = compiler_utils.get_artifact_schema(standard_artifacts.Examples)
  examples.uri = str(tmp_path / 'examples')
  invocation.outputs.output_file = str(tmp_path / 'executor_output.json')
  args = [json_format.MessageToJson(invocation) if a == '{{$}}' else a for a in hook['args']]
  driver.main(driver._parse_flags(args))
  output = pipeline_spec_pb2.ExecutorOutput()
  with open(tmp_path / 'executor_output.json') as f:
    json_format.Parse(f.read(), output)
  return json_format.MessageToDict(output)['parameterValues']


def _age(root):
  """Dates every file and folder under `root` LONG_AGO, so that a change now shows."""
  for folder, _, names in os.walk(root):
    for path in [folder] + [os.path.join(folder, n) for n in names]:
      os.utime(path, (LONG_AGO, LONG_AGO))


def test_the_hook_fingerprint_stays_for_unchanged_files_and_follows_every_change(
  compiled, tmp_path
):
  data = tmp_path / 'data'
  demo_data.generate(
    str(data / 'span-1'), train_per_class=2, test_per_class=1, min_size=32, max_size=36
  )
  (data / 'meta.csv').write_text('path,source\nspan-1/Train/COVID/covid_0000.png,a\n')
  _age(data)
  first = _hook(compiled, data, tmp_path)
  fingerprint = first['input_fingerprint']
  assert first['span'] == 0.0  # no {SPAN} pattern: the executor records the span it ingests
  assert fingerprint.splitlines()[0].startswith('split:depth-1,num_files:2,')  # meta.csv, span-1
  assert len(fingerprint.splitlines()) == cache_key.MAX_DEPTH + 1  # and the CSV's
  assert _hook(compiled, data, tmp_path)['input_fingerprint'] == fingerprint

  span_1 = data / 'span-1'
  changes = {
    'rewritten in place': lambda: os.utime(span_1 / 'Test' / 'NORMAL' / 'normal_0000.png'),
    'relabelled (same size and time, other folder)': lambda: shutil.move(
      span_1 / 'Train' / 'COVID' / 'covid_0001.png', span_1 / 'Train' / 'NORMAL' / 'covid_0001.png'
    ),
    'metadata edited': lambda: (data / 'meta.csv').write_text('path,source\n'),
    'new span': lambda: shutil.copytree(span_1, data / 'span-2'),
  }
  for change, make in changes.items():
    make()
    previous, fingerprint = fingerprint, _hook(compiled, data, tmp_path)['input_fingerprint']
    assert fingerprint != previous, change


def test_a_metadata_csv_must_be_local_or_inside_the_data_folder():
  component = ImageFolderExampleGen(input_base=DATA, metadata_csv='/gcs/b/meta.csv')
  splits = json.loads(component.exec_properties['input_config'])['splits']
  # The driver joins patterns to input_base with os.path.join, which keeps an absolute one.
  assert splits[-1] == {'name': 'metadata_csv', 'pattern': '/gcs/b/meta.csv'}
  with pytest.raises(ValueError, match='must be a local file or lie inside the data folder'):
    ImageFolderExampleGen(input_base=DATA, metadata_csv='gs://my-bucket/meta.csv')
