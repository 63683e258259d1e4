"""`cxr history`: every run of an output folder, oldest first, read back from ML Metadata.

Per run: when it started, the span it ingested, which components ran and which reused cached
results, the test accuracy and COVID recall of the run's model, the baseline it was judged against,
whether it was blessed, the version pushed to serving, the drift check's verdict on the span
(components/drift), and the steps that failed or were interrupted. A killed run leaves its running
step RUNNING (or NEW) in ML Metadata forever; such a step is shown as interrupted unless a run holds
the output folder's lock and it belongs to the newest run (then it is still running).
"""

import dataclasses
import datetime
import json
from typing import Any, Dict, List, Optional, Tuple

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components import labels
from components.evaluation import eval_config as eval_config_lib
from components.evaluation import results
from pipeline import metadata_queries
from pipeline import run_lock
from pipeline.output_layout import layout
from pipeline.pipeline import DRIFT_CHECK
from pipeline.pipeline import EVALUATOR
from pipeline.pipeline import INGESTION
from pipeline.pipeline import PUSHER
from pipeline.pipeline import TRAINER

_artifact = metadata_queries.execution_artifact
STATES = {
  metadata_store_pb2.Execution.COMPLETE: 'ran',
  metadata_store_pb2.Execution.CACHED: 'cached',
  metadata_store_pb2.Execution.FAILED: 'failed',
  metadata_store_pb2.Execution.RUNNING: 'unfinished',
  metadata_store_pb2.Execution.NEW: 'unfinished',
}


@dataclasses.dataclass
class RunRecord:
  """One pipeline run as `cxr history` shows it (None: the run has no such result)."""

  run_id: str
  started: str
  span: Optional[int]  # latest span ingested (0: no span folders)
  span_selection: Optional[str]  # what was asked: 'latest', 'all', 'N' or 'N-M'
  ran: List[str]  # components that executed
  cached: List[str]  # components that reused an earlier run's result
  failed: List[str]
  interrupted: List[str]  # steps a killed run left unfinished
  model_id: Optional[int]  # the Trainer's Model artifact (same id when cached)
  baseline_model_id: Optional[int]  # the blessed model the Evaluator compared with
  accuracy: Optional[float]
  covid_recall: Optional[float]
  blessed: Optional[bool]
  pushed_version: Optional[str]
  # The drift check: 'first' (nothing to compare), 'none', or 'allowed:' / 'stopped:' and the
  # drifted features; drift_summary is its one line (distances and thresholds).
  drift: Optional[str] = None
  drift_summary: Optional[str] = None


def _metrics(evaluation_uri: str) -> Dict[str, Optional[float]]:
  """Accuracy and COVID recall (argmax) of the candidate model on the overall test split."""
  candidate, _ = results.model_names(results.load_eval_config(evaluation_uri))
  overall = results.load_metrics(evaluation_uri).get(results.OVERALL, {})
  return dict(
    accuracy=overall.get(results.MetricId(eval_config_lib.ACCURACY, model_name=candidate)),
    covid_recall=overall.get(
      results.MetricId(eval_config_lib.ARGMAX_RECALL, class_id=labels.COVID, model_name=candidate)
    ),
  )


def _drift(report: metadata_store_pb2.Artifact) -> Tuple[str, str]:
  """(verdict, summary) of a DriftReport artifact."""
  drifted = metadata_queries.custom_property(report, 'drifted')
  if metadata_queries.custom_property(report, 'previous_span') == -1:
    verdict = 'first'
  elif not drifted:
    verdict = 'none'
  else:
    allowed = metadata_queries.custom_property(report, 'accepted') == 1
    verdict = f'{"allowed" if allowed else "stopped"}:{drifted}'
  return verdict, metadata_queries.custom_property(report, 'summary')


def _record(store: metadata_store.MetadataStore, run_id: str, running: bool) -> RunRecord:
  """The run's record; `running`: the run is still going (its unfinished steps are running)."""
  executions = metadata_queries.node_executions(store, run_id)
  latest = {node: execution for node, execution in executions}  # the last attempt of each node
  by_state: Dict[str, List[str]] = {state: [] for state in STATES.values()}
  for node, execution in latest.items():
    state = STATES.get(execution.last_known_state)
    if state:
      by_state[state].append(node)
  started = min((e.create_time_since_epoch for _, e in executions), default=0)
  record = RunRecord(
    run_id=run_id,
    started=datetime.datetime.fromtimestamp(started / 1000).isoformat(timespec='seconds'),
    span=None,
    span_selection=None,
    ran=by_state['ran'],
    cached=by_state['cached'],
    failed=by_state['failed'],
    interrupted=[] if running else by_state['unfinished'],
    model_id=None,
    baseline_model_id=None,
    accuracy=None,
    covid_recall=None,
    blessed=None,
    pushed_version=None,
  )
  if INGESTION in latest:
    examples = _artifact(store, latest[INGESTION].id, 'examples')
    record.span = examples.properties['span'].int_value if examples else None
    record.span_selection = metadata_queries.custom_property(latest[INGESTION], 'span_selection')
  if DRIFT_CHECK in latest:
    report = _artifact(store, latest[DRIFT_CHECK].id, 'report')
    if report is not None:
      record.drift, record.drift_summary = _drift(report)
  if TRAINER in latest:
    model = _artifact(store, latest[TRAINER].id, 'model')
    record.model_id = model.id if model else None
  if EVALUATOR in latest:
    baseline = _artifact(
      store, latest[EVALUATOR].id, 'baseline_model', metadata_store_pb2.Event.INPUT
    )
    record.baseline_model_id = baseline.id if baseline else None
    blessing = _artifact(store, latest[EVALUATOR].id, 'blessing')
    if blessing is not None:
      record.blessed = metadata_queries.custom_property(blessing, 'blessed') == 1
    evaluation = _artifact(store, latest[EVALUATOR].id, 'evaluation')
    if evaluation is not None:
      vars(record).update(_metrics(evaluation.uri))
  if PUSHER in latest:
    pushed = _artifact(store, latest[PUSHER].id, 'pushed_model')
    if pushed is not None and metadata_queries.custom_property(pushed, 'pushed') == 1:
      record.pushed_version = metadata_queries.custom_property(pushed, 'pushed_version')
  return record


def read_history(
  output_dir: str,
  connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
) -> List[RunRecord]:
  """The runs recorded for `output_dir` (its SQLite store, or `connection_config`), oldest first."""
  live = run_lock.is_held(output_dir)
  with metadata_queries.open_store(layout(output_dir), connection_config) as store:
    ids = metadata_queries.run_ids(store)
    return [_record(store, run_id, running=live and run_id == ids[-1]) for run_id in ids]


def _cell(value: Any) -> str:
  if value is None:
    return '-'
  if isinstance(value, bool):
    return 'yes' if value else 'no'
  if isinstance(value, float):
    return f'{value:.3f}'
  return str(value)


def format_table(records: List[RunRecord]) -> str:
  """A plain-text table, one line per run."""
  header = [
    'run',
    'started',
    'span',
    'ran',
    'cached',
    'model',
    'baseline',
    'accuracy',
    'covid_recall',
    'blessed',
    'pushed',
    'drift',
    'failed',
    'interrupted',
  ]
  rows = [
    [
      r.run_id,
      r.started,
      _cell(r.span),
      str(len(r.ran)),
      str(len(r.cached)),
      _cell(r.model_id),
      _cell(r.baseline_model_id),
      _cell(r.accuracy),
      _cell(r.covid_recall),
      _cell(r.blessed),
      _cell(r.pushed_version),
      _cell(r.drift),
      ', '.join(r.failed) or '-',
      ', '.join(r.interrupted) or '-',
    ]
    for r in records
  ]
  widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
  lines = [
    '  '.join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
    for row in [header] + rows
  ]
  return '\n'.join(lines)


def to_json(records: List[RunRecord]) -> str:
  return json.dumps([dataclasses.asdict(r) for r in records], indent=2)
