"""`cxr`: the command line of the chest X-ray pipeline."""
import argparse
import dataclasses
import json
import logging
import os
import sys

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')  # before TensorFlow is first imported
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from components.evaluation import gate as gate_lib  # pylint: disable=g-import-not-at-top
from pipeline import configs  # pylint: disable=g-import-not-at-top
from pipeline import output_layout  # pylint: disable=g-import-not-at-top
from pipeline import run_lock  # pylint: disable=g-import-not-at-top

_HPARAM_FLAGS = (  # flag, hparams key, type
    ('--epochs', 'epochs', int),
    ('--batch-size', 'batch_size', int),
    ('--learning-rate', 'learning_rate', float),
    ('--freeze-layers', 'freeze_layers', int),
    ('--weights', 'weights', str),
    ('--train-steps', 'train_steps', int),
    ('--eval-steps', 'eval_steps', int),
    ('--mixed-precision', 'mixed_precision', str),
)


def _add_pipeline_arguments(p):
  """Arguments of `run` and `compile-kfp`; returns the 'orchestration' group for more flags."""
  p.add_argument('--data', required=True, help='dataset root (class folders, Train/Test, Kaggle or span-N layout)')
  p.add_argument('--output', required=True, help='output folder: pipeline root, metadata store, serving/<version>/')
  p.add_argument('--demo', action='store_true', help=f'small, fast settings for the demo data: image size {configs.DEMO_IMAGE_SIZE}, {configs.DEMO_HPARAMS}')
  g = p.add_argument_group('ingestion')
  g.add_argument('--span', default='latest', help="span-N folders to ingest: latest, all, N or N-M")
  g.add_argument('--group-regex', default='', help=r"keeps files whose names share this group in one split, e.g. '(person\d+)_'")
  g.add_argument('--ignore-unknown-classes', action='store_true', help='skip (and report) folders that are not a known class')
  g.add_argument('--max-bad-fraction', type=float, default=configs.MAX_BAD_FRACTION)
  g = p.add_argument_group('model')
  g.add_argument('--image-size', type=int, default=None, help=f'default {configs.IMAGE_SIZE}')
  g.add_argument('--image-channels', type=int, choices=(1, 3), default=configs.IMAGE_CHANNELS)
  g.add_argument('--normalization', choices=('featurewise_center', 'resnet_v2'), default=configs.NORMALIZATION)
  g.add_argument('--preset', choices=('recommended', 'seed'), default=configs.PRESET)
  for flag, key, kind in _HPARAM_FLAGS:
    g.add_argument(flag, dest=key, type=kind, default=None)
  g.add_argument('--hparam', action='append', default=[], metavar='KEY=VALUE',
                 help='any Trainer hyperparameter (components/hparams.py), e.g. --hparam xla=true')
  g.add_argument('--warm-start', action='store_true', help='start from the last blessed model')
  g = p.add_argument_group('gate')
  gate = gate_lib.Gate()
  g.add_argument('--min-accuracy', type=float, default=gate.min_accuracy)
  g.add_argument('--min-covid-recall', type=float, default=gate.min_covid_recall)
  g.add_argument('--max-accuracy-drop', type=float, default=gate.max_accuracy_drop)
  g.add_argument('--gate-on', choices=gate_lib.GATE_ON, default=gate.gate_on,
                 help='judge accuracy and COVID recall by the lower end of their 95%% interval '
                      '(default) or by the figure itself')
  g = p.add_argument_group('orchestration')
  g.add_argument('--no-cache', action='store_true', help='re-run every component')
  g.add_argument('--beam-engine', choices=('direct', 'dataflow', 'flink', 'spark'), default='direct',
                 help='where the Beam steps run; the --beam-arg flags complete the engine\'s preset '
                      '(pipeline/beam_args.py, docs/scaling_out.md)')
  g.add_argument('--beam-arg', action='append', default=None, dest='beam_args',
                 help=f'Beam pipeline argument (repeatable), e.g. --beam-arg=--project=P; default '
                      f'{" ".join(configs.BEAM_PIPELINE_ARGS)}')
  return g


def _add_run_parser(subparsers) -> None:
  p = subparsers.add_parser('run', help='run the whole pipeline on a dataset folder')
  g = _add_pipeline_arguments(p)
  g.add_argument('--runner', choices=('local', 'beam'), default='local',
                 help='orchestrator: TFX LocalDagRunner, or BeamDagRunner (the DAG as a Beam pipeline)')
  g.add_argument('--metadata-mysql', default=os.environ.get('CXR_METADATA_MYSQL', ''),
                 metavar='HOST[:PORT]/DATABASE',
                 help='ML Metadata on a MySQL server instead of OUTPUT/metadata.sqlite; account in '
                      'CXR_MYSQL_USER / CXR_MYSQL_PASSWORD (default: $CXR_METADATA_MYSQL)')
  g.add_argument('--pipeline-root', default='', metavar='FOLDER',
                 help='artifacts folder (default OUTPUT/pipeline_root); a gs:// folder for Dataflow')
  g.add_argument('--lock-wait', type=float, default=0.0, metavar='SECONDS',
                 help='wait this long for another run of the same --output to finish (default: fail at once)')
  p.set_defaults(func=_run)


def run_options_from_args(args):
  """RunOptions from parsed `cxr run` arguments."""
  from components import hparams  # pylint: disable=g-import-not-at-top
  from pipeline.run_options import RunOptions  # pylint: disable=g-import-not-at-top
  overrides = dict(configs.DEMO_HPARAMS) if args.demo else {}
  overrides.update({key: getattr(args, key) for _, key, _ in _HPARAM_FLAGS if getattr(args, key) is not None})
  for item in args.hparam:
    key, sep, value = item.partition('=')
    if not sep:
      raise ValueError(f'--hparam takes KEY=VALUE, got {item!r}')
    overrides[key.strip()] = value.strip()
  image_size = args.image_size or (configs.DEMO_IMAGE_SIZE if args.demo else configs.IMAGE_SIZE)
  options = RunOptions(
      data_root=args.data, output_dir=args.output, span=args.span, group_regex=args.group_regex,
      unknown_classes='ignore' if args.ignore_unknown_classes else 'error',
      max_bad_fraction=args.max_bad_fraction, image_size=image_size,
      image_channels=args.image_channels, normalization=args.normalization, preset=args.preset,
      hparam_overrides=overrides, warm_start=args.warm_start, min_accuracy=args.min_accuracy,
      min_covid_recall=args.min_covid_recall, max_accuracy_drop=args.max_accuracy_drop,
      gate_on=args.gate_on,
      enable_cache=not args.no_cache, beam_pipeline_args=_beam_pipeline_args(args))
  hparams.from_custom_config(options.trainer_config())  # bad values fail here, before ingestion
  options.gate()  # and bad gate values
  return options


def _beam_pipeline_args(args):
  """The engine's preset plus the --beam-arg flags (validated), or None for the default."""
  if args.beam_engine == 'direct' and not args.beam_args:
    return None
  from pipeline import beam_args  # pylint: disable=g-import-not-at-top
  return beam_args.compose(args.beam_engine, args.beam_args or ())


def _run(args) -> int:
  from pipeline import metadata_config  # pylint: disable=g-import-not-at-top
  from pipeline import run_summary  # pylint: disable=g-import-not-at-top
  from pipeline.output_layout import layout  # pylint: disable=g-import-not-at-top
  options = dataclasses.replace(run_options_from_args(args), metadata_mysql=args.metadata_mysql,
                                pipeline_root=args.pipeline_root, lock_wait=args.lock_wait)
  if args.runner == 'beam':
    from pipeline import beam_runner as runner  # pylint: disable=g-import-not-at-top
  else:
    from pipeline import local_runner as runner  # pylint: disable=g-import-not-at-top
  runner.run(options)
  store = (metadata_config.connection_config(options.metadata_mysql, layout(options.output_dir).metadata_path)
           if options.metadata_mysql else None)
  print(run_summary.summarize(options.output_dir, store))
  return 0


def _add_demo_data_parser(subparsers) -> None:
  from components import demo_data  # pylint: disable=g-import-not-at-top
  p = subparsers.add_parser('demo-data', help='generate the deterministic demo dataset')
  p.add_argument('--output', required=True, help='folder to write Train/ and Test/ into')
  p.add_argument('--train-per-class', type=int, default=demo_data.TRAIN_PER_CLASS)
  p.add_argument('--test-per-class', type=int, default=demo_data.TEST_PER_CLASS)
  p.add_argument('--seed', type=int, default=0)
  p.set_defaults(func=_demo_data)


def _demo_data(args) -> int:
  from components import demo_data  # pylint: disable=g-import-not-at-top
  output_layout.prepare(args.output)
  counts = demo_data.generate(args.output, train_per_class=args.train_per_class,
                              test_per_class=args.test_per_class, seed=args.seed)
  print(f'Demo dataset written to {os.path.abspath(args.output)}: {counts}')
  return 0


def _add_report_parser(subparsers) -> None:
  p = subparsers.add_parser('report', help="write a run's Markdown report (gate, metrics, curves)")
  p.add_argument('--output', required=True, help='output folder of `cxr run`')
  p.add_argument('--run', default=None, help='pipeline run id (default: the latest run)')
  p.add_argument('--metadata-mysql', default=os.environ.get('CXR_METADATA_MYSQL', ''),
                 metavar='HOST[:PORT]/DATABASE', help='read a MySQL metadata store (as `cxr run`)')
  p.add_argument('--json', action='store_true',
                 help="print the report's figures as one JSON object instead of writing report.md")
  p.set_defaults(func=_report)


def _report(args) -> int:
  from pipeline import metadata_config  # pylint: disable=g-import-not-at-top
  from pipeline import report  # pylint: disable=g-import-not-at-top
  config = metadata_config.mysql_config(args.metadata_mysql) if args.metadata_mysql else None
  if args.json:
    print(json.dumps(report.report_json(args.output, run_id=args.run, connection_config=config),
                     indent=2))
  else:
    print(report.render_report(args.output, run_id=args.run, connection_config=config))
  return 0


def _add_predict_parser(subparsers) -> None:
  p = subparsers.add_parser(
      'predict', help='classify image files and folders with a pushed model',
      description='Prints the class and probabilities of each image; exits with 1 if any file '
                  'could not be read or decoded, was refused before decoding (not a regular '
                  'file, over the pixel limit) or a folder could not be listed (the others are '
                  'still classified). A SavedModel runs its own graph: load only models you '
                  'trust.')
  p.add_argument('--model', required=True,
                 help='pushed model version folder, or a serving folder or `cxr run` output '
                      'folder (its newest version that loads)')
  p.add_argument('images', nargs='+', metavar='IMAGE_OR_FOLDER',
                 help='image files, or folders searched recursively for .png/.jpg/.jpeg/.bmp/.gif')
  p.add_argument('--json', action='store_true', help='one JSON object per line')
  p.set_defaults(func=_predict)


def _predict(args) -> int:
  from pipeline import predict  # pylint: disable=g-import-not-at-top
  return predict.run(args.model, args.images, as_json=args.json)


def _add_history_parser(subparsers) -> None:
  p = subparsers.add_parser(
      'history', help='every run of an output folder: span, cached steps, metrics, blessing, push')
  p.add_argument('--output', required=True, help='output folder of `cxr run`')
  p.add_argument('--json', action='store_true', help='a JSON list instead of a table')
  p.add_argument('--metadata-mysql', default=os.environ.get('CXR_METADATA_MYSQL', ''),
                 metavar='HOST[:PORT]/DATABASE', help='read a MySQL metadata store (as `cxr run`)')
  p.set_defaults(func=_history)


def _history(args) -> int:
  from pipeline import history  # pylint: disable=g-import-not-at-top
  from pipeline import metadata_config  # pylint: disable=g-import-not-at-top
  config = metadata_config.mysql_config(args.metadata_mysql) if args.metadata_mysql else None
  records = history.read_history(args.output, config)
  print(history.to_json(records) if args.json else history.format_table(records))
  return 0


def _add_compile_kfp_parser(subparsers) -> None:
  p = subparsers.add_parser(
      'compile-kfp', help='write the Kubeflow Pipelines v2 / Vertex AI pipeline spec (JSON)',
      description='--data and --output are gs:// folders; see docs/scaling_out.md.')
  _add_pipeline_arguments(p)
  p.add_argument('--file', default='cxr-covid-pipeline.json', help='pipeline spec to write')
  p.add_argument('--image', default=None,
                 help='container image with TFX and this project (default cxr-tfx-pipeline:0.1.0)')
  p.add_argument('--serving-dir', default=None,
                 help='push folder inside the containers (default /gcs/<bucket>/<path>/serving)')
  p.set_defaults(func=_compile_kfp)


def _compile_kfp(args) -> int:
  from pipeline import kubeflow_v2_runner  # pylint: disable=g-import-not-at-top
  job = kubeflow_v2_runner.compile_pipeline(
      run_options_from_args(args), args.file, image=args.image or kubeflow_v2_runner.DEFAULT_IMAGE,
      serving_dir=args.serving_dir)
  print(f'Wrote {args.file}: {len(job["pipelineSpec"]["root"]["dag"]["tasks"])} steps')
  return 0


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog='cxr', description=__doc__)
  parser.add_argument('-v', '--verbose', action='store_true', help='debug logging')
  subparsers = parser.add_subparsers(dest='command', required=True)
  _add_run_parser(subparsers)
  _add_demo_data_parser(subparsers)
  _add_report_parser(subparsers)
  _add_predict_parser(subparsers)
  _add_history_parser(subparsers)
  _add_compile_kfp_parser(subparsers)
  return parser


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  if argv is None:
    del sys.argv[1:]  # TFX's Beam executors parse sys.argv as absl flags, where -v is --verbosity
  logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                      format='%(asctime)s %(levelname)s %(name)s: %(message)s')
  try:
    return args.func(args)
  except (ValueError, FileNotFoundError, ConnectionError, run_lock.OutputFolderBusy,
          output_layout.OutputFolderUnusable) as e:
    print(f'cxr {args.command}: error: {e}', file=sys.stderr)
    return 2


if __name__ == '__main__':
  sys.exit(main())
