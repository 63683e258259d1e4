"""Runs the pipeline with TFX's BeamDagRunner: the component DAG itself is a Beam pipeline.

Same pipeline, metadata store, cache and output folder as pipeline/local_runner.py (the two
runners can alternate on one output folder). Each component is a Beam stage started once its
upstream stages finish; the components' own Beam work (ingestion, statistics, Transform,
Evaluator) still runs on the engine chosen by the Beam arguments (DirectRunner, Dataflow,
Flink, Spark). `cxr run --runner beam` uses it.
"""

from typing import Optional

from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

from pipeline import local_runner
from pipeline import run_console
from pipeline.run_options import RunOptions


def run(options: RunOptions, console: Optional[run_console.Console] = None) -> None:
  """Runs the whole pipeline to completion under BeamDagRunner (raises if a component fails).

  Checks, password masking, log and step lines as in local_runner.execute.
  """
  local_runner.execute(options, BeamDagRunner(), console)
