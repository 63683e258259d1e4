"""Runs the pipeline on this machine: LocalDagRunner, ML Metadata in SQLite (or MySQL), Beam
args."""

import datetime
import logging
import os
from typing import Optional

from tfx import v1 as tfx
from tfx.dsl.compiler import compiler
from tfx.dsl.compiler import constants
from tfx.orchestration.portable import runtime_parameter_utils
from tfx.proto.orchestration import pipeline_pb2

from components import ingestion
from pipeline import beam_args
from pipeline import configs
from pipeline import log_redaction
from pipeline import metadata_config
from pipeline import run_console
from pipeline import run_lock
from pipeline import run_options
from pipeline import run_temp_dir
from pipeline import step_lines
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
  ingestion.check(data_root, options.ingest)
  if metadata_connection_config is None:
    metadata_connection_config = metadata_config.connection_config(
      options.metadata_mysql, paths.metadata_path
    )
    metadata_config.check_usable(metadata_connection_config)
  logging.info('ML Metadata: %s', metadata_config.describe(metadata_connection_config))
  steps_beam_args, step_beam_args = beam_args.by_step(
    options.beam_pipeline_args, configs.BEAM_PIPELINE_ARGS, data_root, pipeline_root
  )
  return run_options.build_pipeline(
    options,
    pipeline_root=pipeline_root,
    data_root=data_root,
    schema_path=os.path.join(configs.SCHEMA_DIR, 'schema.pbtxt'),
    serving_model_dir=paths.serving_dir,
    drift_reference_dir=paths.drift_reference_dir,
    metadata_connection_config=metadata_connection_config,
    beam_pipeline_args=steps_beam_args,
    step_beam_args=step_beam_args,
  )


def _compile_with_run_id(pipeline: tfx.dsl.Pipeline, run_id: str) -> pipeline_pb2.Pipeline:
  """The pipeline's IR with its run id set; the runners' `run_with_ir` keeps it (they only fill in
  a run id still unset). This is what their `run` compiles, less the resolution of the
  components' pip dependencies: these components declare none (named by dotted path, configs.py)."""
  ir = compiler.Compiler().compile(pipeline)
  runtime_parameter_utils.substitute_runtime_parameter(
    ir, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id}
  )
  return ir


def execute(options: RunOptions, dag_runner, console: Optional[run_console.Console] = None) -> None:
  """Runs the whole pipeline to completion with `dag_runner`, a TFX LocalDagRunner or
  BeamDagRunner (raises if a component fails).

  `build` checks everything it can (dataset, spans, gate, Beam arguments, metadata store) before
  the run lock creates the output folder; TFX's log of the config gets the password masked. The
  run id is chosen here, so that `console` (pipeline/run_console.py, `cxr run`'s) moves its log into
  OUTPUT/logs/<run id>.log before the first step. Each step logs its start and end lines
  (pipeline/step_lines.py).
  """
  logging.info(
    'Running pipeline %s with %s on %s -> %s',
    configs.PIPELINE_NAME,
    type(dag_runner).__name__,
    options.data_root,
    os.path.abspath(options.output_dir),
  )
  pipeline = build(options)
  run_id = datetime.datetime.now().isoformat()
  with (
    run_lock.hold(options.output_dir, options.lock_wait),
    run_temp_dir.hold(options.output_dir),
    log_redaction.redacting(pipeline.metadata_connection_config.mysql.password),
    step_lines.reporting(len(pipeline.components)),
  ):
    if console is not None:
      console.log_to(layout(options.output_dir).log_path(run_id))
    dag_runner.run_with_ir(_compile_with_run_id(pipeline, run_id))


def run(options: RunOptions, console: Optional[run_console.Console] = None) -> None:
  """Runs the whole pipeline with TFX's LocalDagRunner (see `execute`)."""
  execute(options, tfx.orchestration.LocalDagRunner(), console)
