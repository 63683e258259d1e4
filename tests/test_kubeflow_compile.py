"""The Kubeflow Pipelines v2 / Vertex spec: every node, the container image, paths and caching."""

import json

import pytest
from tfx.v1.extensions import google_cloud_ai_platform as vertex_ai

from components import hparams
from components.image_spec import ImageSpec
from components.ingestion import cache_key
import docker_files
from pipeline import configs
from pipeline import kubeflow_v2_runner
from pipeline.run_options import RunOptions
from pipeline.vertex_training import VertexTraining

IMAGE = 'europe-docker.pkg.dev/my-project/cxr/cxr-tfx-pipeline:0.1.0'


def _options(**kwargs):
  return RunOptions(data_root='gs://my-bucket/data', output_dir='gs://my-bucket/cxr', **kwargs)


@pytest.fixture(scope='module')
def compiled(tmp_path_factory):
  path = tmp_path_factory.mktemp('kfp') / 'cxr-covid.json'
  options = _options(
    image=ImageSpec(size=128),
    warm_start=True,
    beam_pipeline_args=['--direct_running_mode=multi_processing', '--direct_num_workers=4'],
  )
  job = kubeflow_v2_runner.compile_pipeline(options, str(path), image=IMAGE)
  pipeline = kubeflow_v2_runner.build(
    options, kubeflow_v2_runner.default_serving_dir(options.output_dir)
  )
  with open(path, encoding='utf-8') as f:
    assert json.load(f) == job  # the file holds what was returned
  return job, pipeline


def _tasks(job):
  return job['pipelineSpec']['root']['dag']['tasks']


def _parameter(job, task, name):
  return _tasks(job)[task]['inputs']['parameters'][name]['runtimeValue']['constantValue'][
    'stringValue'
  ]


def test_every_pipeline_node_is_a_task(compiled):
  job, pipeline = compiled
  node_ids = {component.id for component in pipeline.components}
  assert 'latest_blessed_model_resolver' in node_ids and 'Evaluator' in node_ids
  tasks = set(_tasks(job))
  for node_id in node_ids:
    assert node_id in tasks or any(t.startswith(node_id + '-') for t in tasks), node_id
  # KFP resolves the baseline with two queries (model, blessing) instead of one Resolver node.
  assert len(tasks) == len(node_ids) + 1
  assert set(_tasks(job)['Evaluator']['dependentTasks']) == {
    'ImageFolderExampleGen',
    'Trainer',
    'latest_blessed_model_resolver-model-resolver',
  }
  assert 'latest_blessed_model_resolver-model-resolver' in _tasks(job)['Trainer']['dependentTasks']


def test_every_container_runs_the_given_image_with_the_beam_arguments(compiled):
  job, _ = compiled
  executors = job['pipelineSpec']['deploymentSpec']['executors']
  containers = {name: e['container'] for name, e in executors.items() if 'container' in e}
  assert len(containers) == 10  # all nodes but the two resolver queries
  for name, container in containers.items():
    assert container['image'] == IMAGE, name
    assert (
      container['command'][-1] == 'tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor'
    )
  ingestion_args = containers['ImageFolderExampleGen_executor']['args']
  assert ingestion_args[-2:] == ['--direct_running_mode=multi_processing', '--direct_num_workers=4']
  transform_args = containers['Transform_executor']['args']
  assert transform_args[-3:] == [*ingestion_args[-2:], '--direct_running_mode=in_memory']
  assert _executor_class(job, 'ImageFolderExampleGen') == 'components.ingestion.executor.Executor'


def test_paths_point_into_the_bucket_and_the_image(compiled):
  job, _ = compiled
  assert job['runtimeConfig']['gcsOutputDirectory'] == 'gs://my-bucket/cxr/pipeline_root'
  assert _parameter(job, 'ImageFolderExampleGen', 'input_base') == 'gs://my-bucket/data'
  assert _parameter(job, 'ImportSchemaGen', 'schema_file') == '/pipeline/schemas/schema.pbtxt'
  destination = json.loads(_parameter(job, 'AtomicPusher', 'push_destination'))
  assert destination['filesystem']['base_directory'] == '/gcs/my-bucket/cxr/serving'


def test_the_drift_gate_comes_before_the_transform(compiled):
  job, _ = compiled
  assert _parameter(job, 'DriftCheck', 'reference_dir') == 'gs://my-bucket/cxr/drift_reference'
  assert _tasks(job)['DriftGate']['dependentTasks'] == ['DriftCheck']
  assert 'DriftGate' in _tasks(job)['Transform']['dependentTasks']


def test_the_pusher_gets_what_the_model_card_is_written_from(compiled):
  job, _ = compiled
  pusher = _tasks(job)['AtomicPusher']
  assert set(pusher['inputs']['artifacts']) == {
    'model',
    'model_blessing',
    'evaluation',
    'examples',
    'ingest_report',
    'model_run',
  }
  assert set(pusher['dependentTasks']) == {'ImageFolderExampleGen', 'Trainer', 'Evaluator'}


def test_component_code_and_options_are_carried(compiled):
  job, _ = compiled
  assert _parameter(job, 'Trainer', 'run_fn') == 'components.trainer.run_fn'
  assert (
    _parameter(job, 'Transform', 'preprocessing_fn') == 'components.preprocessing.preprocessing_fn'
  )
  trainer_config = json.loads(_parameter(job, 'Trainer', 'custom_config'))
  assert trainer_config['image_size'] == 128 and trainer_config['warm_start'] is True
  assert (
    'base_model' in _tasks(job)['Trainer']['inputs']['artifacts']
  )  # warm start from the baseline


def test_one_machine_trains_in_the_pipeline_step_by_default(compiled):
  job, _ = compiled
  trainer_config = json.loads(_parameter(job, 'Trainer', 'custom_config'))
  assert not [key for key in trainer_config if key.startswith('ai_platform_')]
  assert _executor_class(job, 'Trainer') == 'tfx.components.trainer.executor.GenericExecutor'


def _container_args(job, task):
  return job['pipelineSpec']['deploymentSpec']['executors'][f'{task}_executor']['container']['args']


def _executor_class(job, task):
  args = _container_args(job, task)
  return args[args.index('--executor_class_path') + 1]


def test_several_replicas_train_as_a_vertex_custom_job_of_that_many_machines(tmp_path):
  training = VertexTraining(
    replicas=3, project='my-project', region='europe-west4', machine_type='n1-highmem-8'
  )
  job = kubeflow_v2_runner.compile_pipeline(
    _options(), str(tmp_path / 'p.json'), image=IMAGE, training=training
  )
  assert (
    _executor_class(job, 'Trainer')
    == 'tfx.extensions.google_cloud_ai_platform.trainer.executor.GenericExecutor'
  )
  assert _parameter(job, 'Trainer', 'run_fn') == 'components.trainer.run_fn'
  config = json.loads(_parameter(job, 'Trainer', 'custom_config'))
  assert config[vertex_ai.ENABLE_VERTEX_KEY] is True
  assert config[vertex_ai.VERTEX_REGION_KEY] == 'europe-west4'
  replica = {
    'machine_spec': {'machine_type': 'n1-highmem-8'},
    'container_spec': {'image_uri': IMAGE},
  }
  assert config[vertex_ai.TRAINING_ARGS_KEY] == {
    'project': 'my-project',
    'job_spec': {
      'worker_pool_specs': [dict(replica, replica_count=1), dict(replica, replica_count=2)]
    },
  }
  # run_fn reads the same custom_config: the extension's keys are not hyperparameters.
  assert config['image_size'] == 224
  assert hparams.from_custom_config(config) == hparams.resolve(config['preset'], {})


@pytest.mark.parametrize(
  'kwargs, message',
  [
    (dict(replicas=0), '--training-replicas must be a whole number >= 1, got 0'),
    (
      dict(replicas=2, region='europe-west4'),
      '--training-replicas 2 runs the Trainer as a Vertex AI custom job: give --vertex-project '
      'and --vertex-region',
    ),
  ],
)
def test_invalid_training_replicas_are_rejected(kwargs, message):
  with pytest.raises(ValueError) as error:
    VertexTraining(**kwargs)
  assert str(error.value) == message


def test_every_step_is_cached_and_ingestion_fingerprints_its_input_first(compiled):
  job, _ = compiled
  caching = {
    name: task.get('cachingOptions', {}).get('enableCache')
    for name, task in _tasks(job).items()
    if not name.startswith('latest_blessed')
  }
  assert set(caching.values()) == {True} and 'ImageFolderExampleGen' in caching
  container = job['pipelineSpec']['deploymentSpec']['executors']['ImageFolderExampleGen_executor'][
    'container'
  ]
  # TFX's ExampleGen driver runs in the container before KFP looks up the cache
  # (tests/test_ingestion_cache_key.py runs it on these arguments).
  hook = container['lifecycle']['preCacheCheck']
  assert hook['command'] == [
    'python',
    '-m',
    'tfx.orchestration.kubeflow.v2.file_based_example_gen.driver',
  ]
  beam_args = container['args'][container['args'].index('{{$}}') + 1 :]
  assert beam_args[-2:] == ['--direct_running_mode=multi_processing', '--direct_num_workers=4']
  assert hook['args'] == ['--json_serialized_invocation_args', '{{$}}', *beam_args]
  input_config = json.loads(_parameter(job, 'ImageFolderExampleGen', 'input_config'))
  assert [split['pattern'] for split in input_config['splits']] == [
    '/'.join(['*'] * depth) for depth in range(1, cache_key.MAX_DEPTH + 1)
  ]


def test_default_image_and_no_cache_option(tmp_path):
  job = kubeflow_v2_runner.compile_pipeline(_options(enable_cache=False), str(tmp_path / 'p.json'))
  images = {
    e['container']['image']
    for e in job['pipelineSpec']['deploymentSpec']['executors'].values()
    if 'container' in e
  }
  # The tag of the docs' `docker build -f docker/pipeline.Dockerfile -t TAG .`
  assert images == {docker_files.docs_build_tags()[docker_files.PIPELINE_DOCKERFILE]}
  assert all(not task.get('cachingOptions', {}).get('enableCache') for task in _tasks(job).values())
  # The default Beam preset names the image's setup.py, not this machine's.
  args = _container_args(job, 'StatisticsGen')
  assert args[-3:] == [
    '--direct_running_mode=multi_processing',
    '--direct_num_workers=0',
    f'--setup_file={kubeflow_v2_runner.CONTAINER_PROJECT_DIR}/setup.py',
  ]


def test_the_pipeline_image_holds_the_project_where_the_spec_reads_it():
  workdirs = [
    rest
    for kw, rest in docker_files.instructions(docker_files.PIPELINE_DOCKERFILE)
    if kw == 'WORKDIR'
  ]
  assert workdirs == [kubeflow_v2_runner.CONTAINER_PROJECT_DIR]


@pytest.mark.parametrize(
  'kwargs, message',
  [
    (
      dict(data_root='/data/cxr', output_dir='gs://b/out'),
      "cannot read the local data folder '/data/cxr'",
    ),
    (dict(data_root='gs://b/data', output_dir='out'), 'output must be a gs:// folder'),
  ],
)
def test_local_paths_are_rejected(tmp_path, kwargs, message):
  with pytest.raises(ValueError, match=message):
    kubeflow_v2_runner.compile_pipeline(RunOptions(**kwargs), str(tmp_path / 'p.json'))


def test_serving_folder_must_be_a_container_path(tmp_path):
  with pytest.raises(ValueError, match='serving folder must be a path inside the containers'):
    kubeflow_v2_runner.compile_pipeline(
      _options(), str(tmp_path / 'p.json'), serving_dir='gs://my-bucket/serving'
    )


def test_dataflow_arguments_are_validated_with_container_paths(tmp_path):
  dataflow = [
    '--runner=DataflowRunner',
    '--region=europe-west4',
    '--temp_location=gs://my-bucket/tmp',
    '--setup_file=/pipeline/setup.py',
  ]  # a file of the image, not of this machine
  with pytest.raises(ValueError, match='Missing required option: project'):
    kubeflow_v2_runner.compile_pipeline(
      _options(beam_pipeline_args=dataflow), str(tmp_path / 'p.json')
    )
  job = kubeflow_v2_runner.compile_pipeline(
    _options(beam_pipeline_args=dataflow + ['--project=my-project']), str(tmp_path / 'p.json')
  )
  args = _container_args(job, 'Transform')
  assert '--runner=DataflowRunner' in args and '--setup_file=/pipeline/setup.py' in args


def test_on_a_dask_cluster_only_the_ingestion_container_gets_the_dask_arguments(tmp_path):
  dask = [f'--runner={configs.DASK_RUNNER}', '--dask_client_address=tcp://dask:8786']
  job = kubeflow_v2_runner.compile_pipeline(
    _options(beam_pipeline_args=dask), str(tmp_path / 'p.json')
  )
  assert _container_args(job, 'ImageFolderExampleGen')[-2:] == dask
  for task in ('StatisticsGen', 'Transform', 'Evaluator'):
    args = _container_args(job, task)
    assert '--runner=FnApiRunner' in args and not set(dask) & set(args), task


def _compile_kfp(path, *flags, data='gs://my-bucket/data'):
  """`cxr compile-kfp` of gs://my-bucket/data into `path` with more `flags`; the exit code."""
  from pipeline import cli

  return cli.main(
    ['compile-kfp', '--data', data, '--output', 'gs://my-bucket/cxr', '--file', str(path), *flags]
  )


def test_cli_compiles_with_the_run_flags(tmp_path, capsys):
  path = tmp_path / 'spec.json'
  flags = ['--image', IMAGE, '--min-accuracy', '0.9', '--epochs', '3']
  assert _compile_kfp(path, *flags, '--serving-dir', '/mnt/models/cxr') == 0
  assert f'Wrote {path}: 12 steps' in capsys.readouterr().out
  with open(path, encoding='utf-8') as f:
    job = json.load(f)
  assert json.loads(_parameter(job, 'Trainer', 'custom_config'))['epochs'] == 3
  assert '0.9' in _parameter(job, 'Evaluator', 'eval_config')
  destination = json.loads(_parameter(job, 'AtomicPusher', 'push_destination'))
  assert destination['filesystem']['base_directory'] == '/mnt/models/cxr'
  assert _compile_kfp(path, data='/local/data') == 2
  assert "cannot read the local data folder '/local/data'" in capsys.readouterr().err


def test_cli_compiles_the_trainer_on_several_machines(tmp_path, capsys):
  path = tmp_path / 'spec.json'
  vertex = ['--vertex-project', 'my-project', '--vertex-region', 'europe-west4']
  assert _compile_kfp(path, '--training-replicas', '4', *vertex) == 0
  with open(path, encoding='utf-8') as f:
    config = json.loads(_parameter(json.load(f), 'Trainer', 'custom_config'))
  pools = config[vertex_ai.TRAINING_ARGS_KEY]['job_spec']['worker_pool_specs']
  assert [pool['replica_count'] for pool in pools] == [1, 3]
  capsys.readouterr()
  assert _compile_kfp(path, '--training-replicas', '-1') == 2
  assert capsys.readouterr().err == (
    'cxr compile-kfp: error: --training-replicas must be a whole number >= 1, got -1\n'
  )
