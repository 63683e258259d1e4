"""Runs the pipeline with TFX's BeamDagRunner: the component DAG itself is a Beam pipeline.

Same pipeline, metadata store, cache and output folder as pipeline/local_runner.py (the two
runners can alternate on one output folder). Each component is a Beam stage started once its
upstream stages finish; the components' own Beam work (ingestion, statistics, Transform,
Evaluator) still runs on the engine chosen by the Beam arguments (DirectRunner, Dataflow,
Flink, Spark). `cxr run --runner beam` uses it.
"""

import logging
import os

from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

from pipeline import configs
from pipeline import local_runner
from pipeline import log_redaction
from pipeline import run_lock
from pipeline import run_temp_dir
from pipeline.run_options import RunOptions


def run(options: RunOptions) -> None:
  """Runs the whole pipeline to completion under BeamDagRunner (raises if a component fails).

  Checks and password masking as in local_runner.run.
  """
  logging.info(
    'Running pipeline %s with BeamDagRunner on %s -> %s',
    configs.PIPELINE_NAME,
    options.data_root,
    os.path.abspath(options.output_dir),
  )
  pipeline = local_runner.build(options)
  with (
    run_lock.hold(options.output_dir, options.lock_wait),
    run_temp_dir.hold(options.output_dir),
    log_redaction.redacting(pipeline.metadata_connection_config.mysql.password),
  ):
    BeamDagRunner().run(pipeline)
