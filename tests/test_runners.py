"""Orchestration pieces: Beam argument sets, metadata connection, run lock, BeamDagRunner wiring."""

import datetime
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time

from absl import logging as absl_logging
import apache_beam as beam
from apache_beam.testing.util import assert_that
from apache_beam.testing.util import equal_to
import pytest
from tfx.utils import dependency_utils

from pipeline import beam_args
from pipeline import configs
from pipeline import log_redaction
from pipeline import metadata_config
from pipeline import run_lock
from pipeline.output_layout import layout

DATAFLOW_OK = [
  '--project=my-project',
  '--region=europe-west4',
  '--temp_location=gs://my-bucket/tmp',
]


# Beam arguments.


def test_direct_engine_defaults_to_multi_processing_on_every_core():
  args = beam_args.compose('direct')
  assert args == [
    '--runner=FnApiRunner',
    '--direct_running_mode=multi_processing',
    '--direct_num_workers=0',
    f'--setup_file={configs.PACKAGE_SETUP_FILE}',
  ]
  # TFX's Beam executors add nothing, so they skip packing TFX into an sdist before each step.
  assert dependency_utils.make_beam_dependency_flags(args) == args


def test_the_direct_preset_runs_on_this_machine_without_a_prism_hand_off(caplog):
  """Beam 2.74's DirectRunner hands a pipeline to Prism first (an sdist of this project, then a
  download of the Prism binary); the preset's pipelines run on its own engine at once."""
  caplog.set_level(logging.INFO, logger='apache_beam')
  with beam.Pipeline(argv=beam_args.compose('direct')) as p:
    squares = p | beam.Create(range(5)) | beam.Map(lambda x: x * x)
    assert_that(squares, equal_to([0, 1, 4, 9, 16]))
  messages = [record.getMessage() for record in caplog.records]
  assert not [m for m in messages if 'Prism' in m or 'sdist' in m]
  assert any('fn_api_runner' in record.name for record in caplog.records)


def test_user_arguments_follow_the_preset_so_they_win():
  args = beam_args.compose('direct', ['--direct_running_mode=in_memory'])
  assert args[-1] == '--direct_running_mode=in_memory'
  from apache_beam.options.pipeline_options import DirectOptions
  from apache_beam.options.pipeline_options import PipelineOptions

  assert PipelineOptions(args).view_as(DirectOptions).direct_running_mode == 'in_memory'


def test_misspelt_option_is_rejected_with_a_suggestion():
  with pytest.raises(
    beam_args.BeamArgsError,
    match=r'Unknown Beam option --direct-running-mode '
    r'\(did you mean --direct_running_mode\?\)',
  ):
    beam_args.compose('direct', ['--direct-running-mode=in_memory'])


def test_unsupported_runner_and_engine_are_rejected():
  with pytest.raises(beam_args.BeamArgsError, match="Unsupported Beam --runner 'SamzaRunner'"):
    beam_args.validate(['--runner=SamzaRunner'])
  with pytest.raises(beam_args.BeamArgsError, match="Unknown Beam engine 'storm'"):
    beam_args.compose('storm')


def test_complete_dataflow_arguments_install_this_package_on_workers():
  args = beam_args.compose(
    'dataflow',
    DATAFLOW_OK,
    data_root='gs://my-bucket/data',
    pipeline_root='gs://my-bucket/out/pipeline_root',
  )
  assert '--runner=DataflowRunner' in args
  assert f'--setup_file={configs.PACKAGE_SETUP_FILE}' in args
  assert os.path.isfile(configs.PACKAGE_SETUP_FILE)
  assert args[-len(DATAFLOW_OK) :] == DATAFLOW_OK


def test_dataflow_lists_every_missing_or_invalid_argument():
  with pytest.raises(beam_args.BeamArgsError) as raised:
    beam_args.compose(
      'dataflow',
      ['--temp_location=/tmp/beam'],
      data_root='/data',
      pipeline_root='gs://my-bucket/out',
    )
  message = str(raised.value)
  assert 'Missing required option: project' in message
  assert 'DataflowRunner needs --region' in message
  assert 'Invalid GCS path (/tmp/beam), given for the option: temp_location' in message
  assert "cannot read the local data folder '/data'" in message
  assert 'output folder' not in message  # gs:// output is fine


def test_dataflow_setup_file_must_exist():
  with pytest.raises(
    beam_args.BeamArgsError, match='--setup_file /nowhere/setup.py does not exist'
  ):
    beam_args.compose('dataflow', DATAFLOW_OK + ['--setup_file=/nowhere/setup.py'])


def test_flink_needs_a_master_and_an_environment():
  with pytest.raises(beam_args.BeamArgsError) as raised:
    beam_args.compose('flink')
  assert 'FlinkRunner needs --flink_master' in str(raised.value)
  assert 'FlinkRunner needs --environment_type' in str(raised.value)
  args = beam_args.compose(
    'flink', ['--flink_master=localhost:8081', '--environment_type=LOOPBACK']
  )
  assert args[0] == '--runner=FlinkRunner'


@pytest.mark.parametrize(
  'environment, expected',
  [
    (['--environment_type=DOCKER'], '--environment_type=DOCKER needs --environment_config=IMAGE'),
    (
      ['--environment_type=PROCESS'],
      'Option process_command is required for environment type PROCESS',
    ),
    (
      ['--environment_type=KUBERNETES'],
      "--environment_type must be one of DOCKER, PROCESS, EXTERNAL, LOOPBACK, got 'KUBERNETES'",
    ),
  ],
)
def test_portable_environment_errors(environment, expected):
  with pytest.raises(beam_args.BeamArgsError, match=expected):
    beam_args.compose('spark', ['--spark_master_url=spark://spark:7077'] + environment)


def test_spark_with_an_image_and_portable_runner_with_a_job_server():
  beam_args.compose(
    'spark',
    [
      '--spark_master_url=spark://spark:7077',
      '--environment_type=DOCKER',
      '--environment_config=registry/cxr-beam:0.1.0',
    ],
  )
  with pytest.raises(beam_args.BeamArgsError, match='PortableRunner needs --job_endpoint'):
    beam_args.validate(['--runner=PortableRunner', '--environment_type=LOOPBACK'])
  beam_args.validate(
    ['--runner=PortableRunner', '--job_endpoint=localhost:8099', '--environment_type=LOOPBACK']
  )


def test_dask_needs_a_scheduler():
  with pytest.raises(beam_args.BeamArgsError, match='DaskRunner needs --dask_client_address'):
    beam_args.compose('dask')
  with pytest.raises(beam_args.BeamArgsError, match='did you mean --dask_client_address'):
    beam_args.compose('dask', ['--dask_client_adress=tcp://10.0.0.5:8786'])
  for scheduler in ('--dask_client_address=tcp://10.0.0.5:8786', '--dask_scheduler_file=s.json'):
    assert beam_args.compose('dask', [scheduler]) == [*configs.BEAM_ENGINES['dask'], scheduler]


# Metadata connection.


def test_sqlite_is_the_default_metadata_store(tmp_path):
  config = metadata_config.connection_config('', str(tmp_path / 'metadata.sqlite'))
  assert config.sqlite.filename_uri == str(tmp_path / 'metadata.sqlite')
  assert metadata_config.describe(config) == f'SQLite {tmp_path / "metadata.sqlite"}'


def test_mysql_address_takes_the_account_from_the_environment():
  env = {metadata_config.USER_ENV: 'cxr', metadata_config.PASSWORD_ENV: 's3cret'}
  config = metadata_config.connection_config('db.internal:3307/cxr_meta', 'unused.sqlite', env)
  assert (config.mysql.host, config.mysql.port, config.mysql.database) == (
    'db.internal',
    3307,
    'cxr_meta',
  )
  assert (config.mysql.user, config.mysql.password) == ('cxr', 's3cret')
  assert metadata_config.describe(config) == 'MySQL cxr@db.internal:3307/cxr_meta'
  assert metadata_config.parse_mysql_address('db/meta').port == metadata_config.DEFAULT_MYSQL_PORT


@pytest.mark.parametrize(
  'spec', ['db.internal', 'db:port/x', 'db:3306/', 'db:99999/x', 'db:1/x;drop']
)
def test_invalid_mysql_address_is_rejected(spec):
  with pytest.raises(ValueError, match=r'MySQL metadata address|Invalid port'):
    metadata_config.parse_mysql_address(spec)


def test_mysql_without_an_account_says_which_variables_to_set():
  with pytest.raises(ValueError, match=f'set {metadata_config.USER_ENV}'):
    metadata_config.mysql_config('db/meta', env={})


# Run lock.

_HOLDER = textwrap.dedent("""
    import sys, time
    from pipeline import run_lock
    with run_lock.hold(sys.argv[1]):
      print('locked', flush=True)
      time.sleep(float(sys.argv[2]))
""")


def _start_holder(output_dir, seconds):
  """Another process that holds the run lock of `output_dir` for `seconds`."""
  holder = subprocess.Popen(
    [sys.executable, '-c', _HOLDER, str(output_dir), str(seconds)],
    stdout=subprocess.PIPE,
    text=True,
  )
  assert holder.stdout.readline().strip() == 'locked'
  return holder


def test_second_run_of_the_same_output_folder_fails_naming_the_holder(tmp_path):
  holder = _start_holder(tmp_path, 60)
  try:
    started = time.monotonic()
    with pytest.raises(run_lock.OutputFolderBusy) as raised:
      with run_lock.hold(str(tmp_path)):
        pytest.fail('lock taken while another process holds it')
    assert time.monotonic() - started < 5
    assert f'pid {holder.pid}' in str(raised.value)
    assert '--lock-wait' in str(raised.value)
    with run_lock.hold(str(tmp_path / 'other-output')):
      pass  # other folders are independent
  finally:
    holder.kill()
    holder.wait()
  with run_lock.hold(str(tmp_path)):  # the kernel dropped the killed holder's lock
    pass


def test_waiting_run_starts_when_the_first_one_ends(tmp_path):
  holder = _start_holder(tmp_path, 1.5)
  try:
    started = time.monotonic()
    with run_lock.hold(str(tmp_path), wait_seconds=60, poll_seconds=0.1):
      waited = time.monotonic() - started
      assert holder.wait(timeout=30) == 0  # the first run released the lock on its way out
      with open(tmp_path / run_lock.LOCK_FILE, encoding='utf-8') as f:
        assert f'pid {os.getpid()}' in f.read()
    assert 0.5 < waited < 30
  finally:
    holder.kill()
    holder.wait()


def test_waiting_gives_up_after_the_timeout(tmp_path):
  holder = _start_holder(tmp_path, 60)
  try:
    started = time.monotonic()
    with pytest.raises(run_lock.OutputFolderBusy):
      with run_lock.hold(str(tmp_path), wait_seconds=1.0, poll_seconds=0.1):
        pass
    assert 0.9 < time.monotonic() - started < 10
  finally:
    holder.kill()
    holder.wait()


# Runners: what happens before any step runs.


@pytest.fixture
def tiny_dataset(tmp_path):
  from components import demo_data

  demo_data.generate(
    str(tmp_path / 'data'), train_per_class=2, test_per_class=1, min_size=16, max_size=16
  )
  return str(tmp_path / 'data')


def _run_options(data_root, output_dir, **kwargs):
  from pipeline.run_options import RunOptions

  return RunOptions(data_root=data_root, output_dir=output_dir, **kwargs)


@pytest.mark.parametrize('runner_module', ['local_runner', 'beam_runner'])
def test_runners_refuse_an_output_folder_in_use_before_running_anything(
  runner_module, tmp_path, tiny_dataset
):
  import importlib

  runner = importlib.import_module(f'pipeline.{runner_module}')
  output_dir = tmp_path / 'output'
  holder = _start_holder(output_dir, 60)
  try:
    with pytest.raises(run_lock.OutputFolderBusy, match=f'pid {holder.pid}'):
      runner.run(_run_options(tiny_dataset, str(output_dir)))
  finally:
    holder.kill()
    holder.wait()
  assert not (output_dir / 'metadata.sqlite').exists()


def test_build_validates_beam_arguments_and_the_metadata_server(
  tmp_path, tiny_dataset, monkeypatch
):
  from pipeline import local_runner

  with pytest.raises(beam_args.BeamArgsError, match='FlinkRunner needs --flink_master'):
    local_runner.build(
      _run_options(tiny_dataset, str(tmp_path / 'out'), beam_pipeline_args=['--runner=FlinkRunner'])
    )
  monkeypatch.setenv(metadata_config.USER_ENV, 'cxr')
  with pytest.raises(
    ConnectionError, match='Cannot use the metadata store MySQL cxr@127.0.0.1:1/m'
  ):
    local_runner.build(
      _run_options(tiny_dataset, str(tmp_path / 'out'), metadata_mysql='127.0.0.1:1/m')
    )


def test_a_dask_cluster_runs_the_ingestion_and_the_other_beam_steps_stay_direct(
  tmp_path, tiny_dataset
):
  from tfx.dsl.components.base.executor_spec import BeamExecutorSpec

  from pipeline import local_runner

  dask = beam_args.compose('dask', ['--dask_client_address=tcp://10.0.0.5:8786'])
  pipeline = local_runner.build(
    _run_options(tiny_dataset, str(tmp_path / 'out'), beam_pipeline_args=dask)
  )
  beam_steps = {
    c.id: c.executor_spec.beam_pipeline_args
    for c in pipeline.components
    if isinstance(c.executor_spec, BeamExecutorSpec)
  }
  direct = list(configs.BEAM_PIPELINE_ARGS)
  assert beam_steps.pop('ImageFolderExampleGen') == [*direct, *dask]
  assert beam_steps.pop('Transform') == [*direct, '--direct_running_mode=in_memory']
  assert beam_steps == {'StatisticsGen': direct, 'Evaluator': direct}


@pytest.mark.parametrize(
  'args, transform_mode',
  [
    (configs.BEAM_PIPELINE_ARGS, 'in_memory'),
    ([*configs.BEAM_PIPELINE_ARGS, '--direct_num_workers=2'], 'in_memory'),
    (['--runner=DirectRunner'], 'in_memory'),
    (['--runner=FlinkRunner', '--flink_master=[local]', '--environment_type=LOOPBACK'], None),
  ],
)
def test_on_the_direct_engine_the_transform_runs_in_process(args, transform_mode):
  from apache_beam.options.pipeline_options import DirectOptions
  from apache_beam.options.pipeline_options import PipelineOptions

  steps, single = beam_args.by_step(args, configs.BEAM_PIPELINE_ARGS)
  assert steps == list(args)
  transform = PipelineOptions([*steps, *single.get('Transform', [])])
  assert set(single) == ({'Transform'} if transform_mode else set())
  if transform_mode:
    assert transform.view_as(DirectOptions).direct_running_mode == transform_mode


def test_beam_runner_hands_the_whole_pipeline_to_beam_dag_runner_under_the_lock(
  tmp_path, tiny_dataset, monkeypatch
):
  """BeamDagRunner gets the compiled pipeline (IR) of local_runner.build, with the run lock held
  and the run id set, which names the run's log.

  The e2e retraining test runs it for real; here only its input is checked.
  """
  from tfx.orchestration.beam import beam_dag_runner

  from pipeline import beam_runner
  from pipeline import run_console

  output_dir = tmp_path / 'output'
  seen = {}

  def record(self, pipeline_ir, run_options=None):
    del self, run_options
    seen['nodes'] = [node.pipeline_node.node_info.id for node in pipeline_ir.nodes]
    seen['root'] = pipeline_ir.runtime_spec.pipeline_root.field_value.string_value
    seen['run_id'] = pipeline_ir.runtime_spec.pipeline_run_id.field_value.string_value
    with open(output_dir / run_lock.LOCK_FILE, encoding='utf-8') as f:
      seen['lock'] = f.read()

  monkeypatch.setattr(beam_dag_runner.BeamDagRunner, 'run_with_ir', record)
  with run_console.routed() as console:
    beam_runner.run(_run_options(tiny_dataset, str(output_dir)), console)
  assert seen['nodes'][0] == 'ImageFolderExampleGen'
  assert set(seen['nodes']) == {
    'ImageFolderExampleGen',
    'StatisticsGen',
    'ImportSchemaGen',
    'ExampleValidator',
    'DriftCheck',
    'DriftGate',
    'Transform',
    'latest_blessed_model_resolver',
    'Trainer',
    'Evaluator',
    'AtomicPusher',
  }
  assert seen['root'] == str(output_dir / 'pipeline_root')
  assert datetime.datetime.fromisoformat(seen['run_id'])  # as LocalDagRunner's own run ids
  assert console.log_path == layout(str(output_dir)).log_path(seen['run_id'])
  assert os.path.isfile(console.log_path)
  assert f'pid {os.getpid()}' in seen['lock']
  with open(output_dir / run_lock.LOCK_FILE, encoding='utf-8') as f:
    assert f.read() == ''  # released


# The metadata password in logs.


def test_password_is_masked_in_every_log_record_while_the_run_lasts(tmp_path):
  """TFX logs the connection config through absl (`Using connection config: mysql {...}`); other
  loggers, threads and tracebacks are masked too, in the forms a text-format proto escapes."""
  password = 'pä"ss\\word'
  config = metadata_config.mysql_config(
    'db/meta', env={metadata_config.USER_ENV: 'cxr', metadata_config.PASSWORD_ENV: password}
  )
  assert r'password: "p\303\244\"ss\\word"' in str(config)  # how TFX's log showed it
  log_path = tmp_path / 'log.txt'
  handler = logging.FileHandler(log_path, encoding='utf-8')
  logging.getLogger().addHandler(handler)
  absl_logging.set_verbosity(absl_logging.INFO)
  try:
    with log_redaction.redacting(password):
      absl_logging.info('Using connection config:\n %s', config.mysql)
      thread = threading.Thread(
        target=logging.getLogger('beam').warning, args=('connecting with %r', password)
      )
      thread.start()
      thread.join()
      try:
        raise RuntimeError(f'login failed: {config}')
      except RuntimeError:
        logging.getLogger('x').exception('step failed')
    logging.getLogger('after').warning('after the run: %s', password)
  finally:
    logging.getLogger().removeHandler(handler)
    handler.close()
  log = log_path.read_text(encoding='utf-8')
  during, after = log.split('after the run: ')
  for form in log_redaction.printed_forms(password):
    assert form not in during
  assert during.count(f'password: "{log_redaction.MASK}"') == 2  # the log line and the traceback
  assert f"connecting with '{log_redaction.MASK}'" in during
  assert after.strip() == password  # the factory is restored after the block
