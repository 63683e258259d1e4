"""Beam arguments of the data-processing components, per engine, validated before a run starts.

Ingestion, StatisticsGen, Transform and Evaluator are Beam pipelines: the same TFX pipeline runs
them on this machine (the DirectRunner's engine) or on a cluster (Dataflow, Flink, Spark). A Dask
cluster runs the ingestion only, and on the direct engine the Transform runs in-process
(`by_step`).
`compose` starts from an engine's preset and appends the user's arguments (a later flag wins);
`validate` checks them with Beam's own validator plus this project's rules, so a missing or
misspelt option fails at once with every problem listed, not minutes into a run.
"""

import difflib
import importlib
import os
from typing import Dict, List, Optional, Sequence, Tuple

from apache_beam.options import pipeline_options as beam_options
from apache_beam.options.pipeline_options_validator import PipelineOptionsValidator

from pipeline import configs
from pipeline import pipeline as pipeline_lib

# Runners of the ingestion only: on Beam 2.74's DaskRunner, TFDV's statistics and tf.Transform
# fail ("'NoneType' object has no attribute '__dask_keys__'"), while the ingestion writes the
# same bytes as on the direct engine (tests/test_ingestion_dask.py).
INGESTION_ONLY_RUNNERS = (configs.DASK_RUNNER,)
DIRECT_RUNNERS = ('FnApiRunner', 'DirectRunner')
# The Transform on the direct engine runs in this process, whatever the other steps' mode: TF
# already spreads a session over the cores, and the worker processes cost more than they gave (2
# cores, 1,200 records of 1024 px PNGs in 5 files: 53 instead of 35 images/s, 1.1 instead of 2.6
# GB peak for the process tree; the demo's 180 records: 6 instead of 14 s).
DIRECT_TRANSFORM_ARGS = ('--direct_running_mode=in_memory',)

RUNNERS = (
  'FnApiRunner',
  'DirectRunner',
  'DataflowRunner',
  'FlinkRunner',
  'SparkRunner',
  'PortableRunner',
  configs.DASK_RUNNER,
)
PORTABLE_RUNNERS = ('FlinkRunner', 'SparkRunner', 'PortableRunner')
ENVIRONMENT_TYPES = ('DOCKER', 'PROCESS', 'EXTERNAL', 'LOOPBACK')
_REMOTE_SCHEMES = ('gs://',)


class BeamArgsError(ValueError):
  """Invalid Beam arguments; the message lists every problem found."""


def _unknown_flags(args: Sequence[str]) -> List[str]:
  """Flags no Beam options class defines, each with the closest known flag when there is one."""
  parser = beam_options._BeamArgumentParser(allow_abbrev=False)
  for options_class in beam_options.PipelineOptions.__subclasses__():
    options_class._add_argparse_args(parser)
  _, unknown = parser.parse_known_args(list(args))
  known = [flag for action in parser._actions for flag in action.option_strings]
  messages = []
  for arg in unknown:
    name = arg.split('=', 1)[0]
    close = difflib.get_close_matches(name.replace('-', '_'), known, n=1)
    messages.append(
      f'Unknown Beam option {name}' + (f' (did you mean {close[0]}?)' if close else '')
    )
  return messages


def _dataflow_errors(
  options: beam_options.PipelineOptions,
  validator: PipelineOptionsValidator,
  paths: Dict[str, Optional[str]],
  local_files: bool,
) -> List[str]:
  gcp = options.view_as(beam_options.GoogleCloudOptions)
  errors = validator.validate_cloud_options(gcp)
  if not gcp.region:
    errors.append('DataflowRunner needs --region (e.g. --region=europe-west4)')
  errors += validator.validate_gcs_path(gcp, 'temp_location')
  if gcp.staging_location:
    errors += validator.validate_gcs_path(gcp, 'staging_location')
  setup_file = options.view_as(beam_options.SetupOptions).setup_file
  if not setup_file:
    errors.append(
      f'DataflowRunner needs --setup_file={configs.PACKAGE_SETUP_FILE} so that workers '
      'can import this project (components.*)'
    )
  elif local_files and not os.path.isfile(setup_file):
    errors.append(f'--setup_file {setup_file} does not exist')
  for name, path in paths.items():
    if path and not path.startswith(_REMOTE_SCHEMES):
      errors.append(
        f'DataflowRunner workers cannot read the local {name} {path!r}: use a gs:// path'
      )
  return errors


def _portable_errors(
  runner: str,
  options: beam_options.PipelineOptions,
  validator: PipelineOptionsValidator,
  args: Sequence[str],
) -> List[str]:
  errors = []
  portable = options.view_as(beam_options.PortableOptions)
  if runner == 'FlinkRunner' and not _flag_given(args, 'flink_master'):
    errors.append(
      'FlinkRunner needs --flink_master=HOST:PORT (the JobManager REST address), '
      'or --flink_master=[local] for an embedded cluster'
    )
  if runner == 'SparkRunner' and not _flag_given(args, 'spark_master_url'):
    errors.append(
      'SparkRunner needs --spark_master_url=spark://HOST:PORT, or local[N] for an embedded cluster'
    )
  if runner == 'PortableRunner' and not portable.job_endpoint:
    errors.append(
      'PortableRunner needs --job_endpoint=HOST:PORT of a running Beam job server '
      '(Flink or Spark job server)'
    )
  environment_type = (portable.environment_type or '').upper()
  if not environment_type:
    errors.append(
      f'{runner} needs --environment_type: one of {", ".join(ENVIRONMENT_TYPES)} '
      '(LOOPBACK runs the Python code in this process, for a local cluster only)'
    )
  elif environment_type not in ENVIRONMENT_TYPES:
    errors.append(
      f'--environment_type must be one of {", ".join(ENVIRONMENT_TYPES)}, '
      f'got {portable.environment_type!r}'
    )
  elif environment_type == 'DOCKER' and not (
    portable.environment_config or portable.lookup_environment_option('docker_container_image')
  ):
    errors.append(
      '--environment_type=DOCKER needs --environment_config=IMAGE: an SDK image with this '
      'project and its locked dependencies, built from docker/beam_worker.Dockerfile '
      "(docs/scaling_out.md; Beam's default image lacks them)"
    )
  return errors + validator.validate_environment_options(portable)


def _flag_given(args: Sequence[str], name: str) -> bool:
  return any(a == f'--{name}' or a.startswith(f'--{name}=') for a in args)


def validate(
  args: Sequence[str],
  data_root: Optional[str] = None,
  pipeline_root: Optional[str] = None,
  local_files: bool = True,
) -> List[str]:
  """Returns `args` as a list if they are a complete, valid set; raises BeamArgsError otherwise.

  Offline: nothing is contacted (Beam's own Dataflow validation would create a GCS bucket).

  Args:
    args: Beam pipeline arguments, `--name=value` or `--name value`.
    data_root, pipeline_root: the run's input and output locations; remote workers (Dataflow)
      must be able to read them.
    local_files: whether file arguments (--setup_file) name files of this machine; False when the
      pipeline runs in containers (Kubeflow), where they name files of the image.
  """
  args = list(args)
  options = beam_options.PipelineOptions(args)
  runner = _runner(options)
  if runner not in RUNNERS:
    raise BeamArgsError(f'Unsupported Beam --runner {runner!r}: use one of {", ".join(RUNNERS)}')
  if runner == configs.DASK_RUNNER:
    importlib.import_module(configs.DASK_RUNNER.rsplit('.', 1)[0])  # defines the --dask_* options
  validator = PipelineOptionsValidator(options, runner=None)
  errors = _unknown_flags(args)
  if runner == 'DataflowRunner':
    errors += _dataflow_errors(
      options, validator, {'data folder': data_root, 'output folder': pipeline_root}, local_files
    )
  elif runner in PORTABLE_RUNNERS:
    errors += _portable_errors(runner, options, validator, args)
  elif runner == configs.DASK_RUNNER and not (
    _flag_given(args, 'dask_client_address') or _flag_given(args, 'dask_scheduler_file')
  ):
    errors.append(
      'DaskRunner needs --dask_client_address=tcp://HOST:PORT (the scheduler of a running '
      'dask.distributed cluster) or --dask_scheduler_file=PATH'
    )
  if errors:
    raise BeamArgsError(
      f'Invalid Beam arguments for {runner} ({" ".join(args)}):\n  - ' + '\n  - '.join(errors)
    )
  return args


def by_step(
  args: Optional[Sequence[str]],
  direct: Sequence[str],
  data_root: Optional[str] = None,
  pipeline_root: Optional[str] = None,
  local_files: bool = True,
) -> Tuple[List[str], Dict[str, List[str]]]:
  """`args` (`direct`, the direct engine's arguments, when there are none) validated as
  `validate` does, then split by step: (the arguments of every Beam step, more arguments of single
  steps by node id, appended to theirs). With a runner of the ingestion only
  (INGESTION_ONLY_RUNNERS), the ingestion runs on `args` and the other steps on `direct`. On the
  direct engine the Transform runs in this process (DIRECT_TRANSFORM_ARGS)."""
  steps = validate(args or direct, data_root, pipeline_root, local_files)
  single = {}
  if _runner(beam_options.PipelineOptions(steps)) in INGESTION_ONLY_RUNNERS:
    steps, single = list(direct), {pipeline_lib.INGESTION: steps}
  if _runner(beam_options.PipelineOptions(steps)) in DIRECT_RUNNERS:
    single[pipeline_lib.TRANSFORM] = list(DIRECT_TRANSFORM_ARGS)
  return steps, single


def _runner(options: beam_options.PipelineOptions) -> str:
  return options.view_as(beam_options.StandardOptions).runner or 'DirectRunner'


def compose(
  engine: str,
  extra_args: Sequence[str] = (),
  data_root: Optional[str] = None,
  pipeline_root: Optional[str] = None,
) -> List[str]:
  """The preset of `engine` (configs.BEAM_ENGINES) followed by `extra_args`, validated."""
  if engine not in configs.BEAM_ENGINES:
    raise BeamArgsError(
      f'Unknown Beam engine {engine!r}: use one of {", ".join(configs.BEAM_ENGINES)}'
    )
  return validate(list(configs.BEAM_ENGINES[engine]) + list(extra_args), data_root, pipeline_root)
