"""What one run's report reads: its artifacts, found through ML Metadata (`RunArtifacts`)."""

import dataclasses
import logging
from typing import Any, Dict, Optional

from ml_metadata.proto import metadata_store_pb2

from components.drift import result as drift_result
from components.drift.component import DriftReport
from components.ingestion import manifest
from pipeline import metadata_queries
from pipeline.output_layout import layout

_artifact = metadata_queries.execution_artifact


def _producer(store, artifact: metadata_store_pb2.Artifact) -> Optional[int]:
  """Id of the execution that wrote `artifact` (any one, when cached executions reused it)."""
  return next(
    (
      e.execution_id
      for e in store.get_events_by_artifact_ids([artifact.id])
      if e.type == metadata_store_pb2.Event.OUTPUT
    ),
    None,
  )


@dataclasses.dataclass(frozen=True)
class RunArtifacts:
  """What one run's report reads, found through ML Metadata (None when missing)."""

  run_id: str
  evaluation: metadata_store_pb2.Artifact
  blessing: Optional[metadata_store_pb2.Artifact]
  model: Optional[metadata_store_pb2.Artifact]
  baseline_model: Optional[metadata_store_pb2.Artifact]
  model_run: Optional[metadata_store_pb2.Artifact]
  pushed_model: Optional[metadata_store_pb2.Artifact]
  examples: Optional[metadata_store_pb2.Artifact]  # the raw examples the Evaluator read
  ingest_report: Optional[metadata_store_pb2.Artifact]  # of those examples
  drift_report: Optional[metadata_store_pb2.Artifact] = None  # the run's drift check

  def blessed(self) -> Optional[bool]:
    """The Evaluator's verdict (None: no blessing recorded)."""
    if self.blessing is None:
      return None
    return metadata_queries.custom_property(self.blessing, 'blessed') == 1

  def pushed_to(self) -> Optional[str]:
    """Where the Pusher copied the model, or None when it pushed nothing."""
    if self.pushed_model and metadata_queries.custom_property(self.pushed_model, 'pushed'):
      return metadata_queries.custom_property(self.pushed_model, 'pushed_destination')
    return None

  def drift(self) -> Optional[drift_result.DriftResult]:
    """The run's drift check, or None (a run from before it)."""
    return drift_result.read(self.drift_report.uri) if self.drift_report else None

  def confounding(self) -> Optional[Dict[str, Any]]:
    """The ingestion summary's `confounding` entry, or None."""
    if self.ingest_report is None:
      return None
    return manifest.read_summary(self.ingest_report.uri).get('confounding')


def find_run_artifacts(
  output_dir: str,
  run_id: Optional[str] = None,
  connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
) -> RunArtifacts:
  """The evaluation of `run_id` (default: the latest run that has one) and the artifacts around
  it, from the output folder's SQLite store or `connection_config`."""
  with metadata_queries.open_store(layout(output_dir), connection_config) as store:
    runs = metadata_queries.run_ids(store)
    if not runs:
      raise ValueError(f'No pipeline run recorded in the metadata store of {output_dir}')
    if run_id is None:
      run_id = next(
        (
          r for r in reversed(runs) if metadata_queries.latest_artifact(store, r, 'ModelEvaluation')
        ),
        runs[-1],
      )
      if run_id != runs[-1]:
        logging.warning(
          'The latest run, %s, has no evaluation: reporting on run %s', runs[-1], run_id
        )
    if run_id not in runs:
      raise ValueError(f'No run {run_id!r} in the metadata store; runs: {", ".join(runs)}')
    evaluation = metadata_queries.latest_artifact(store, run_id, 'ModelEvaluation')
    if evaluation is None:
      raise ValueError(f'Run {run_id} has no evaluation (did it stop before the Evaluator?)')
    evaluator = _producer(store, evaluation)
    model = _artifact(store, evaluator, 'model', metadata_store_pb2.Event.INPUT)
    examples = _artifact(store, evaluator, 'examples', metadata_store_pb2.Event.INPUT)
    return RunArtifacts(
      run_id=run_id,
      evaluation=evaluation,
      blessing=_artifact(store, evaluator, 'blessing'),
      model=model,
      baseline_model=_artifact(store, evaluator, 'baseline_model', metadata_store_pb2.Event.INPUT),
      model_run=_artifact(store, _producer(store, model), 'model_run') if model else None,
      pushed_model=metadata_queries.latest_artifact(store, run_id, 'PushedModel'),
      examples=examples,
      ingest_report=_artifact(store, _producer(store, examples), 'report') if examples else None,
      drift_report=metadata_queries.latest_artifact(store, run_id, DriftReport.TYPE_NAME),
    )
