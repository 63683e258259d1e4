"""`cxr`: the command line of the chest X-ray pipeline.

Flags, choices and defaults come from the settings of each component (IngestOptions, ImageSpec,
HParams); these modules import neither TensorFlow nor Beam, so `cxr --help` stays fast.
"""

import argparse
import dataclasses
import json
import logging
import os
import sys
import warnings

from components import audit
from components import backbones
from components import hparams
from components import image_spec
from components.drift import options as drift_options
from components.evaluation import gate as gate_lib
from components.ingestion import options as ingest_options
from pipeline import configs
from pipeline import output_layout
from pipeline import run_console
from pipeline import run_lock
from pipeline import vertex_training

_INGEST = ingest_options.IngestOptions()
_DRIFT = drift_options.DriftOptions()
_VERTEX_TRAINING = vertex_training.VertexTraining()
_IMAGE = image_spec.ImageSpec()
_HPARAMS = hparams.HParams()
_GATE = gate_lib.Gate()
_AUDIT = audit.Regions()
_HPARAM_FLAGS = (  # flag, hparams key, type
  ('--epochs', 'epochs', int),
  ('--batch-size', 'batch_size', int),
  ('--learning-rate', 'learning_rate', float),
  ('--backbone', 'backbone', str),
  ('--freeze-layers', 'freeze_layers', int),
  ('--weights', 'weights', str),
  ('--train-steps', 'train_steps', int),
  ('--eval-steps', 'eval_steps', int),
  ('--mixed-precision', 'mixed_precision', str),
  ('--class-weight', 'class_weight', str),
  ('--seed', 'seed', int),
  ('--covid-target-sensitivity', 'covid_target_sensitivity', float),
)
_HPARAM_CHOICES = {
  'backbone': tuple(backbones.BACKBONES),
  'mixed_precision': hparams.MIXED_PRECISION_MODES,
  'class_weight': hparams.CLASS_WEIGHTS,
}


def _add_metadata_mysql_argument(p, help_text: str) -> None:
  p.add_argument(
    '--metadata-mysql',
    default=os.environ.get('CXR_METADATA_MYSQL', ''),
    metavar='HOST[:PORT]/DATABASE',
    help=help_text,
  )


def _read_store_config(args):
  """The MySQL store of --metadata-mysql, or None: the output folder's SQLite file."""
  from pipeline import metadata_config

  return metadata_config.mysql_config(args.metadata_mysql) if args.metadata_mysql else None


def _add_pipeline_arguments(p):
  """Arguments of `run` and `compile-kfp`; returns the 'orchestration' group for more flags."""
  p.add_argument(
    '--data',
    required=True,
    help='dataset root (class folders, Train/Test, Kaggle or span-N layout)',
  )
  p.add_argument(
    '--output',
    required=True,
    help='output folder: pipeline root, metadata store, serving/<version>/',
  )
  p.add_argument(
    '--demo',
    action='store_true',
    help=f'small, fast settings for the demo data: image size '
    f'{configs.DEMO_IMAGE_SIZE}, {configs.DEMO_HPARAMS}',
  )
  g = p.add_argument_group('ingestion')
  g.add_argument(
    '--span',
    default=_INGEST.span,
    help='span-N folders to ingest: latest, all, N or N-M (default %(default)s)',
  )
  g.add_argument(
    '--group-regex',
    default=_INGEST.group_regex,
    help=r"keeps files whose names share this group in one split, e.g. '(person\d+)_'",
  )
  g.add_argument(
    '--ignore-unknown-classes',
    action='store_true',
    help='skip (and report) folders that are not a known class',
  )
  g.add_argument(
    '--max-bad-fraction',
    type=float,
    default=_INGEST.max_bad_fraction,
    help='fail when more than this share of the image files is quarantined (default %(default)s)',
  )
  g.add_argument(
    '--metadata-csv',
    default=_INGEST.metadata_csv,
    metavar='PATH',
    help='CSV of per-image metadata: columns path (relative to --data) or file (a unique file '
    'name), and any of source, view, sex, age, manufacturer, patient_id; a listed value replaces '
    "the folder's or the DICOM file's",
  )
  g.add_argument(
    '--patient-salt-file',
    metavar='PATH',
    help='the secret salt of the patient hashes (made on first use; default OUTPUT/patient_salt, '
    'outside the artifacts): keep it to compare patients across output folders',
  )
  g.add_argument(
    '--allow-confounded-sources',
    action='store_true',
    help='go on (with a warning in the report) when a test class comes only from sources '
    'holding no other test class; refused by default',
  )
  g.add_argument(
    '--allow-drift',
    action='store_true',
    help="train on a span whose train split drifted from the previous span's beyond the "
    "schema's drift thresholds (image sizes, bit depth, intensity, format, source, label mix); "
    'stopped before the Transform by default; the drift is reported either way',
  )
  g = p.add_argument_group('model')
  g.add_argument(
    '--image-size',
    type=int,
    default=None,
    help=f'default {_IMAGE.size}; {configs.DEMO_IMAGE_SIZE} with --demo',
  )
  g.add_argument(
    '--image-channels',
    type=int,
    choices=image_spec.CHANNELS,
    default=_IMAGE.channels,
    help='default %(default)s',
  )
  g.add_argument(
    '--normalization',
    choices=image_spec.NORMALIZATIONS,
    default=_IMAGE.normalization,
    help='default %(default)s',
  )
  g.add_argument(
    '--preset', choices=sorted(hparams.PRESETS), default=_HPARAMS.preset, help='default %(default)s'
  )
  for flag, key, kind in _HPARAM_FLAGS:
    default = getattr(_HPARAMS, key)
    g.add_argument(
      flag,
      dest=key,
      type=kind,
      default=None,
      choices=_HPARAM_CHOICES.get(key),
      help=(
        f"default: the preset's ({default} in {_HPARAMS.preset})"
        if key in hparams.PRESETS[_HPARAMS.preset]
        else f'default {default}'
      ),
    )
  g.add_argument(
    '--hparam',
    action='append',
    default=[],
    metavar='KEY=VALUE',
    help='any Trainer hyperparameter (components/hparams.py), e.g. --hparam xla=true',
  )
  g.add_argument('--warm-start', action='store_true', help='start from the last blessed model')
  g = p.add_argument_group('gate')
  g.add_argument('--min-accuracy', type=float, default=_GATE.min_accuracy)
  g.add_argument('--min-covid-recall', type=float, default=_GATE.min_covid_recall)
  g.add_argument('--max-accuracy-drop', type=float, default=_GATE.max_accuracy_drop)
  g.add_argument(
    '--gate-on',
    choices=gate_lib.GATE_ON,
    default=_GATE.gate_on,
    help='judge accuracy and COVID recall by the lower end of their 95%% interval '
    '(default) or by the figure itself',
  )
  g.add_argument(
    '--max-ece',
    type=float,
    default=_GATE.max_ece,
    help='highest accepted top-label expected calibration error on the test split '
    '(default: not gated)',
  )
  g.add_argument(
    '--allow-shortcuts',
    action='store_true',
    help='bless a model the masking audit suspects of a shortcut (its accuracy with the lung '
    f'fields hidden exceeds chance by more than {_GATE.shortcut_margin:g}); the suspicion is '
    'still reported',
  )
  g.add_argument(
    '--audit-lungs',
    metavar="'CX,CY,RX,RY;CX,CY,RX,RY'",
    help='the lung fields the masking audit hides: ellipses as fractions of the image width and '
    f'height (default {";".join(",".join(f"{v:g}" for v in e) for e in _AUDIT.lungs)})',
  )
  g.add_argument(
    '--audit-border',
    type=float,
    default=_AUDIT.border,
    metavar='FRACTION',
    help='width of the border band the masking audit hides, as a fraction of each side '
    '(default %(default)s)',
  )
  g = p.add_argument_group('orchestration')
  g.add_argument('--no-cache', action='store_true', help='re-run every component')
  g.add_argument(
    '--beam-engine',
    choices=tuple(configs.BEAM_ENGINES),
    default='direct',
    help='where the Beam steps run (dask: the ingestion only); the --beam-arg flags complete '
    "the engine's preset (pipeline/configs.py, docs/scaling_out.md)",
  )
  g.add_argument(
    '--beam-arg',
    action='append',
    default=None,
    dest='beam_args',
    help=f'Beam pipeline argument (repeatable), e.g. --beam-arg=--project=P; default '
    f'{" ".join(configs.BEAM_PIPELINE_ARGS)}',
  )
  return g


def _add_run_parser(subparsers) -> None:
  p = subparsers.add_parser('run', help='run the whole pipeline on a dataset folder')
  g = _add_pipeline_arguments(p)
  g.add_argument(
    '--runner',
    choices=('local', 'beam'),
    default='local',
    help='orchestrator: TFX LocalDagRunner, or BeamDagRunner (the DAG as a Beam pipeline)',
  )
  _add_metadata_mysql_argument(
    g,
    'ML Metadata on a MySQL server instead of OUTPUT/metadata.sqlite; account in '
    'CXR_MYSQL_USER / CXR_MYSQL_PASSWORD (default: $CXR_METADATA_MYSQL)',
  )
  g.add_argument(
    '--pipeline-root',
    default='',
    metavar='FOLDER',
    help='artifacts folder (default OUTPUT/pipeline_root); a gs:// folder for Dataflow',
  )
  g.add_argument(
    '--lock-wait',
    type=float,
    default=0.0,
    metavar='SECONDS',
    help='wait this long for another run of the same --output to finish (default: fail at once)',
  )
  p.set_defaults(func=_run)


def _local_path(path):
  """An absolute path for a local file (components may run in another folder), else `path`."""
  return os.path.abspath(path) if path and '://' not in path else path


def _patient_salt_file(args):
  """--patient-salt-file, else the output folder's (gs://... too: the components read it)."""
  if args.patient_salt_file:
    return _local_path(args.patient_salt_file)
  if '://' in args.output:
    return f'{args.output.rstrip("/")}/{output_layout.PATIENT_SALT}'
  return output_layout.layout(args.output).patient_salt


def run_options_from_args(args):
  """RunOptions from parsed `cxr run` arguments."""
  from pipeline.run_options import RunOptions

  overrides = dict(configs.DEMO_HPARAMS) if args.demo else {}
  overrides.update(
    {key: getattr(args, key) for _, key, _ in _HPARAM_FLAGS if getattr(args, key) is not None}
  )
  for item in args.hparam:
    key, sep, value = item.partition('=')
    if not sep:
      raise ValueError(f'--hparam takes KEY=VALUE, got {item!r}')
    overrides[key.strip()] = value.strip()
  image_size = args.image_size or (configs.DEMO_IMAGE_SIZE if args.demo else _IMAGE.size)
  options = RunOptions(
    data_root=args.data,
    output_dir=args.output,
    ingest=dataclasses.replace(
      _INGEST,
      span=args.span,
      group_regex=args.group_regex,
      unknown_classes='ignore' if args.ignore_unknown_classes else 'error',
      max_bad_fraction=args.max_bad_fraction,
      metadata_csv=_local_path(args.metadata_csv),
      allow_confounded_sources=args.allow_confounded_sources,
      patient_salt_file=_patient_salt_file(args),
    ),
    drift=dataclasses.replace(_DRIFT, allow_drift=args.allow_drift),
    image=image_spec.ImageSpec(image_size, args.image_channels, args.normalization),
    preset=args.preset,
    hparam_overrides=overrides,
    warm_start=args.warm_start,
    audit_regions=audit.Regions.parse(args.audit_lungs, args.audit_border),
    gate=gate_lib.Gate(
      min_accuracy=args.min_accuracy,
      min_covid_recall=args.min_covid_recall,
      max_accuracy_drop=args.max_accuracy_drop,
      gate_on=args.gate_on,
      max_ece=args.max_ece,
      allow_shortcuts=args.allow_shortcuts,
    ),
    enable_cache=not args.no_cache,
    beam_pipeline_args=_beam_pipeline_args(args),
  )
  hparams.from_custom_config(options.trainer_config())  # bad values fail here, before ingestion
  return options


def _beam_pipeline_args(args):
  """The engine's preset plus the --beam-arg flags (validated), or None for the default."""
  if args.beam_engine == 'direct' and not args.beam_args:
    return None
  from pipeline import beam_args

  return beam_args.compose(args.beam_engine, args.beam_args or ())


def _run(args) -> int:
  """The pipeline, a line per step and the summary on the console, the rest in the run's log
  (pipeline/run_console.py); TFX and TensorFlow are imported once the log catches their noise."""
  with run_console.routed(args.verbose) as console:
    from pipeline import run_summary

    options = dataclasses.replace(
      run_options_from_args(args),
      metadata_mysql=args.metadata_mysql,
      pipeline_root=args.pipeline_root,
      lock_wait=args.lock_wait,
    )

    if args.runner == 'beam':
      from pipeline import beam_runner as runner
    else:
      from pipeline import local_runner as runner
    runner.run(options, console)
    console.print(run_summary.summarize(options.output_dir, _read_store_config(args)))
    console.print(f'Log: {console.log_path}')
  return 0


def _add_demo_data_parser(subparsers) -> None:
  from components import demo_data

  p = subparsers.add_parser('demo-data', help='generate the deterministic demo dataset')
  p.add_argument('--output', required=True, help='folder to write Train/ and Test/ into')
  p.add_argument('--train-per-class', type=int, default=demo_data.TRAIN_PER_CLASS)
  p.add_argument('--test-per-class', type=int, default=demo_data.TEST_PER_CLASS)
  p.add_argument('--seed', type=int, default=0)
  p.set_defaults(func=_demo_data)


def _demo_data(args) -> int:
  from components import demo_data

  output_layout.prepare(args.output)
  counts = demo_data.generate(
    args.output,
    train_per_class=args.train_per_class,
    test_per_class=args.test_per_class,
    seed=args.seed,
  )
  print(f'Demo dataset written to {os.path.abspath(args.output)}: {counts}')
  return 0


def _add_report_parser(subparsers) -> None:
  p = subparsers.add_parser(
    'report', help="write a run's report, Markdown and HTML (gate, metrics, curves, data)"
  )
  p.add_argument('--output', required=True, help='output folder of `cxr run`')
  p.add_argument('--run', default=None, help='pipeline run id (default: the latest run)')
  _add_metadata_mysql_argument(p, 'read a MySQL metadata store (as `cxr run`)')
  p.add_argument(
    '--json',
    action='store_true',
    help="print the report's figures as one JSON object instead of writing the report",
  )
  p.set_defaults(func=_report)


def _report(args) -> int:
  from pipeline import report

  config = _read_store_config(args)
  if args.json:
    print(
      json.dumps(
        report.report_json(args.output, run_id=args.run, connection_config=config), indent=2
      )
    )
  else:
    print(*report.render_report(args.output, run_id=args.run, connection_config=config), sep='\n')
  return 0


def _add_predict_parser(subparsers) -> None:
  p = subparsers.add_parser(
    'predict',
    help='classify image files and folders with a pushed model',
    description='Prints the class and probabilities of each image, or "outside the training '
    'distribution: not classified" for an image unlike the training data (--json still gives '
    'its class, with in_distribution and ood_score); exits with 1 if any file '
    'could not be read or decoded, was refused before decoding (not a regular '
    'file, over the pixel limit) or a folder could not be listed (the others are '
    'still classified). A SavedModel runs its own graph: load only models you '
    'trust.',
  )
  p.add_argument(
    '--model',
    required=True,
    help='pushed model version folder, or a serving folder or `cxr run` output '
    'folder (its newest version that loads)',
  )
  p.add_argument(
    'images',
    nargs='+',
    metavar='IMAGE_OR_FOLDER',
    help='image or DICOM files, or folders searched recursively for .png/.jpg/.jpeg/.bmp/.gif/.dcm',
  )
  p.add_argument('--json', action='store_true', help='one JSON object per line')
  p.add_argument(
    '--explain',
    metavar='DIR',
    help='also write a Grad-CAM overlay PNG per image into DIR (where the evidence for the '
    'predicted class lies); each line gives its path',
  )
  p.set_defaults(func=_predict)


def _predict(args) -> int:
  from pipeline import predict

  return predict.run(args.model, args.images, as_json=args.json, explain_dir=args.explain)


def _add_history_parser(subparsers) -> None:
  p = subparsers.add_parser(
    'history', help='every run of an output folder: span, cached steps, metrics, blessing, push'
  )
  p.add_argument('--output', required=True, help='output folder of `cxr run`')
  p.add_argument('--json', action='store_true', help='a JSON list instead of a table')
  _add_metadata_mysql_argument(p, 'read a MySQL metadata store (as `cxr run`)')
  p.set_defaults(func=_history)


def _history(args) -> int:
  from pipeline import history

  records = history.read_history(args.output, _read_store_config(args))
  print(history.to_json(records) if args.json else history.format_table(records))
  return 0


def _add_compile_kfp_parser(subparsers) -> None:
  p = subparsers.add_parser(
    'compile-kfp',
    help='write the Kubeflow Pipelines v2 / Vertex AI pipeline spec (JSON)',
    description='--data and --output are gs:// folders; see docs/scaling_out.md.',
  )
  _add_pipeline_arguments(p)
  p.add_argument('--file', default='cxr-covid-pipeline.json', help='pipeline spec to write')
  p.add_argument(
    '--image',
    default=None,
    help='container image with TFX and this project (default cxr-tfx-pipeline:0.1.0)',
  )
  p.add_argument(
    '--serving-dir',
    default=None,
    help='push folder inside the containers (default /gcs/<bucket>/<path>/serving)',
  )
  g = p.add_argument_group('training on several machines (a Vertex AI custom job)')
  g.add_argument(
    '--training-replicas',
    type=int,
    default=_VERTEX_TRAINING.replicas,
    metavar='N',
    help='machines the Trainer runs on: 1 (default) in the pipeline step, more as a Vertex AI '
    'custom job under MultiWorkerMirroredStrategy (docs/scaling_out.md)',
  )
  g.add_argument(
    '--vertex-project', default=_VERTEX_TRAINING.project, help='Google Cloud project of that job'
  )
  g.add_argument(
    '--vertex-region',
    default=_VERTEX_TRAINING.region,
    help='its Vertex AI region, e.g. europe-west4',
  )
  g.add_argument(
    '--training-machine-type',
    default=_VERTEX_TRAINING.machine_type,
    help='machine type of every replica (default %(default)s)',
  )
  p.set_defaults(func=_compile_kfp)


def _compile_kfp(args) -> int:
  from pipeline import kubeflow_v2_runner

  job = kubeflow_v2_runner.compile_pipeline(
    run_options_from_args(args),
    args.file,
    image=args.image or kubeflow_v2_runner.DEFAULT_IMAGE,
    serving_dir=args.serving_dir,
    training=vertex_training.VertexTraining(
      replicas=args.training_replicas,
      project=args.vertex_project,
      region=args.vertex_region,
      machine_type=args.training_machine_type,
    ),
  )
  print(f'Wrote {args.file}: {len(job["pipelineSpec"]["root"]["dag"]["tasks"])} steps')
  return 0


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog='cxr', description=__doc__)
  parser.add_argument(
    '-v',
    '--verbose',
    action='store_true',
    help="debug logging; with run, every log record on the console too, not only in the run's log",
  )
  subparsers = parser.add_subparsers(dest='command', required=True)
  _add_run_parser(subparsers)
  _add_demo_data_parser(subparsers)
  _add_report_parser(subparsers)
  _add_predict_parser(subparsers)
  _add_history_parser(subparsers)
  _add_compile_kfp_parser(subparsers)
  return parser


def _configure_logging(args) -> None:
  """Keeps the libraries' noise (TensorFlow's start-up, deprecations) off the console.

  `cxr run` sends it to its log with the INFO records (pipeline/run_console.py). The other
  commands print their results and errors only: of the log records, this project's warnings and
  everyone's errors, and no C++ log (TF_CPP_MIN_LOG_LEVEL 3, whatever the environment says:
  TensorFlow's C++ errors reach Python as exceptions). --verbose shows every record, and the C++
  logs that TF_CPP_MIN_LOG_LEVEL lets through (default 2: errors).
  """
  quiet = args.command != 'run' and not args.verbose
  if 'tensorflow' not in sys.modules:  # TensorFlow reads it when it loads
    if quiet:
      os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'
    else:
      os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  # google.api_core's notice that it no longer supports Python 3.10, which TFX 1.16 requires.
  warnings.filterwarnings(
    'ignore', message='You are using a non-supported Python version', category=FutureWarning
  )
  handler = logging.StreamHandler()
  if quiet:
    handler.addFilter(lambda r: r.levelno >= logging.ERROR or run_console.from_own_code(r))
  logging.basicConfig(
    level=logging.DEBUG if args.verbose else logging.WARNING if quiet else logging.INFO,
    format='%(levelname)s: %(message)s' if quiet else run_console.VERBOSE_FORMAT,
    handlers=[handler],
  )


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  if argv is None:
    del sys.argv[1:]  # TFX's Beam executors parse sys.argv as absl flags, where -v is --verbosity
  _configure_logging(args)
  try:
    return args.func(args)
  except (
    ValueError,
    FileNotFoundError,
    ConnectionError,
    run_lock.OutputFolderBusy,
    output_layout.OutputFolderUnusable,
  ) as e:
    print(f'cxr {args.command}: error: {e}', file=sys.stderr)
    return 2


if __name__ == '__main__':
  sys.exit(main())
