"""Runs the pipeline on this machine: LocalDagRunner, ML Metadata in SQLite (or MySQL), Beam
args."""

import logging
import os

from tfx import v1 as tfx

from components.ingestion import fingerprint
from pipeline import beam_args
from pipeline import configs
from pipeline import log_redaction
from pipeline import metadata_config
from pipeline import run_lock
from pipeline import run_options
from pipeline import run_temp_dir
from pipeline.output_layout import layout
from pipeline.run_options import RunOptions


def build(options: RunOptions, metadata_connection_config=None) -> tfx.dsl.Pipeline:
  """The pipeline for `options`, with its paths under options.output_dir.

  Data and artifacts (options.pipeline_root) may be remote (gs://, for Dataflow workers); the
  metadata store, the served models, the drift references and the run lock stay in the local
  output folder.
  """
  paths = layout(options.output_dir)
  pipeline_root = options.pipeline_root or paths.pipeline_root
  data_root = (
    options.data_root if '://' in options.data_root else os.path.abspath(options.data_root)
  )
  if '://' not in data_root and not os.path.isdir(data_root):
    raise FileNotFoundError(f'Dataset folder not found: {data_root}')
  if metadata_connection_config is None:
    metadata_connection_config = metadata_config.connection_config(
      options.metadata_mysql, paths.metadata_path
    )
    metadata_config.check_usable(metadata_connection_config)
  logging.info('ML Metadata: %s', metadata_config.describe(metadata_connection_config))
  return run_options.build_pipeline(
    options,
    pipeline_root=pipeline_root,
    data_root=data_root,
    input_fingerprint=fingerprint(data_root, options.ingest.span, options.ingest.metadata_csv),
    schema_path=os.path.join(configs.SCHEMA_DIR, 'schema.pbtxt'),
    serving_model_dir=paths.serving_dir,
    drift_reference_dir=paths.drift_reference_dir,
    metadata_connection_config=metadata_connection_config,
    beam_pipeline_args=beam_args.validate(
      options.beam_pipeline_args or configs.BEAM_PIPELINE_ARGS, data_root, pipeline_root
    ),
  )


def run(options: RunOptions) -> None:
  """Runs the whole pipeline to completion (raises if a component fails).

  `build` checks everything it can (dataset, spans, gate, Beam arguments, metadata store) before
  the run lock creates the output folder; TFX's log of the config gets the password masked.
  """
  logging.info(
    'Running pipeline %s on %s -> %s',
    configs.PIPELINE_NAME,
    options.data_root,
    os.path.abspath(options.output_dir),
  )
  pipeline = build(options)
  with (
    run_lock.hold(options.output_dir, options.lock_wait),
    run_temp_dir.hold(options.output_dir),
    log_redaction.redacting(pipeline.metadata_connection_config.mysql.password),
  ):
    tfx.orchestration.LocalDagRunner().run(pipeline)
