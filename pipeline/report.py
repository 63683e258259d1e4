"""`cxr report`: a Markdown report of one pipeline run, read back from ML Metadata.

OUTPUT/reports/<run id>/report.md holds the blessing decision and the gate's thresholds, the
test-split classification report (argmax; the gate's own computation), ROC AUC, the confusion
matrix (also as a PNG heatmap), the comparison with the blessed baseline, metrics by source and
the training curves (PNGs written by the Trainer into its model_run artifact).
"""
import dataclasses
import datetime
import json
import logging
import os
import re
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt
from ml_metadata.proto import metadata_store_pb2
import numpy as np
import tensorflow as tf

from components import labels
from components import training_report
from components.evaluation import classification_report
from components.evaluation import eval_config as eval_config_lib
from components.evaluation import results
from pipeline import metadata_queries
from pipeline.output_layout import layout

REPORT_FILE = 'report.md'
CONFUSION_MATRIX_PNG = 'confusion_matrix.png'
_artifact = metadata_queries.execution_artifact
COVID = labels.CLASS_NAMES.index('COVID')

_DISPLAY_NAMES = {eval_config_lib.ACCURACY: 'accuracy', eval_config_lib.ARGMAX_RECALL: 'recall',
                  eval_config_lib.ARGMAX_PRECISION: 'precision', eval_config_lib.ARGMAX_F1: 'F1',
                  eval_config_lib.AUC: 'ROC AUC'}


def _display(metric: results.MetricId) -> str:
  name = _DISPLAY_NAMES.get(metric.name, metric.name)
  if metric.class_id is not None:
    name += f' ({labels.CLASS_NAMES[metric.class_id]})'
  if metric.macro:
    name += ' (macro avg)'
  return name + (' change vs baseline' if metric.is_diff else '')


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join(['---'] * len(header)) + '|']
  return lines + ['| ' + ' | '.join(row) + ' |' for row in rows]


def _fmt(value: Optional[float], signed: bool = False) -> str:
  if value is None or np.isnan(value):
    return 'n/a'
  return f'{value:+.4f}' if signed else f'{value:.4f}'


def _scores_row(name: str, scores: classification_report.ClassScores) -> List[str]:
  return [name, _fmt(scores.precision), _fmt(scores.recall), _fmt(scores.f1),
          f'{scores.support:g}']


def classification_report_table(report: classification_report.ClassificationReport) -> List[str]:
  """The seed notebook's classification report as a Markdown table."""
  rows = [_scores_row(name, scores) for name, scores in zip(report.class_names, report.per_class)]
  rows += [['accuracy', '', '', _fmt(report.accuracy), f'{report.macro_avg.support:g}'],
           _scores_row('macro avg', report.macro_avg),
           _scores_row('weighted avg', report.weighted_avg)]
  return _table(['', 'precision', 'recall', 'f1-score', 'support'], rows)


def save_confusion_matrix_png(matrix: np.ndarray, path: str) -> None:
  """Heatmap of counts (rows: true class, columns: predicted class)."""
  fig, ax = plt.subplots(figsize=(5.5, 4.5))
  image = ax.imshow(matrix, cmap='Blues')
  ticks = range(len(labels.CLASS_NAMES))
  ax.set_xticks(ticks, labels.CLASS_NAMES, rotation=20)
  ax.set_yticks(ticks, labels.CLASS_NAMES)
  ax.set_xlabel('predicted')
  ax.set_ylabel('true')
  ax.set_title('Confusion matrix (test split)')
  for (i, j), count in np.ndenumerate(matrix):
    ax.text(j, i, f'{count:g}', ha='center', va='center',
            color='white' if count > matrix.max() / 2 else 'black')
  fig.colorbar(image, ax=ax)
  fig.savefig(path, dpi=100, bbox_inches='tight')
  plt.close(fig)


def _gate_section(blessed: Optional[int], checks: List[results.GateCheck], pushed: Optional[str],
                  has_baseline: bool) -> List[str]:
  verdict = {1: 'BLESSED', 0: 'NOT BLESSED'}.get(blessed, 'NOT EVALUATED')
  lines = ['## Decision', '', f'**{verdict}**: ' + (
      f'pushed to `{pushed}`.' if pushed else 'not pushed.'), '']
  rows = [[_display(c.metric), c.bound, _fmt(c.measured, signed=c.kind == 'change'),
           'pass' if c.passed else '**FAIL**'] for c in checks]
  lines += _table(['gate check (overall test split)', 'threshold', 'measured', 'result'], rows)
  if not has_baseline:
    lines += ['', 'No blessed baseline model yet: the accuracy change threshold was not applied '
              '(first blessing).']
  return lines + ['']


def _baseline_section(overall: Dict[results.MetricId, float], candidate: str,
                      baseline: str, baseline_uri: str) -> List[str]:
  metrics = ([results.MetricId(eval_config_lib.ACCURACY)]
             + [results.MetricId(eval_config_lib.ARGMAX_RECALL, class_id=i)
                for i in range(labels.NUM_CLASSES)]
             + [results.MetricId(eval_config_lib.ARGMAX_F1, macro=True),
                results.MetricId(eval_config_lib.AUC, macro=True)])
  rows = []
  for metric in metrics:
    new = overall.get(metric._replace(model_name=candidate))
    old = overall.get(metric._replace(model_name=baseline))
    change = new - old if new is not None and old is not None else None
    rows.append([_display(metric), _fmt(new), _fmt(old), _fmt(change, signed=True)])
  return (['## Comparison with the blessed baseline', '', f'Baseline model: `{baseline_uri}`', '']
          + _table(['metric', 'candidate', 'baseline', 'change'], rows) + [''])


def _slices_section(metrics: Dict[str, Dict[results.MetricId, float]], model: str) -> List[str]:
  columns = [results.MetricId(eval_config_lib.ACCURACY),
             results.MetricId(eval_config_lib.ARGMAX_RECALL, class_id=COVID),
             results.MetricId(eval_config_lib.ARGMAX_F1, macro=True)]
  rows = []
  for slice_name, values in sorted(metrics.items()):
    count = values.get(results.MetricId('example_count', model_name=model), 0.0)
    rows.append([slice_name, f'{count:g}']
                + [_fmt(values.get(metric._replace(model_name=model))) for metric in columns])
  return (['## By source', '', 'Reported, not gated (a source may be small or hold one class).', '']
          + _table(['slice', 'examples'] + [_display(metric) for metric in columns], rows)
          + [''])


def _training_section(model_run_uri: Optional[str], report_dir: str) -> List[str]:
  """Hyperparameters, last-epoch figures and the curves the Trainer wrote into model_run."""
  history_path = os.path.join(model_run_uri or '', training_report.HISTORY_FILE)
  if not model_run_uri or not tf.io.gfile.exists(history_path):
    return ['## Training', '', 'No training history found for this run.', '']
  with tf.io.gfile.GFile(history_path) as f:
    history = json.load(f)
  series = history.pop('history', {})
  lines = ['## Training', '']
  lines += [f'- {key}: `{json.dumps(value)}`' for key, value in sorted(history.items())]
  if series:
    epochs = max(len(values) for values in series.values())
    lines += ['', f'Last of {epochs} epoch(s): ' + ', '.join(
        f'{key} {values[-1]:.4f}' for key, values in sorted(series.items()) if values)]
  lines.append('')
  for name, (title, _, _) in training_report.PLOTS.items():
    source = os.path.join(model_run_uri, name)
    if tf.io.gfile.exists(source):
      tf.io.gfile.copy(source, os.path.join(report_dir, name), overwrite=True)
      lines += [f'![{title}]({name})', '']
  return lines


def _run_dir_name(run_id: str) -> str:
  return re.sub(r'[^A-Za-z0-9._-]', '_', run_id)


def _producer(store, artifact: metadata_store_pb2.Artifact) -> Optional[int]:
  """Id of the execution that wrote `artifact` (any one, when cached executions reused it)."""
  return next((e.execution_id for e in store.get_events_by_artifact_ids([artifact.id])
               if e.type == metadata_store_pb2.Event.OUTPUT), None)


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


def find_run_artifacts(output_dir: str, run_id: Optional[str] = None,
                       connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
                       ) -> RunArtifacts:
  """The evaluation of `run_id` (default: the latest run that has one) and the artifacts around
  it, from the output folder's SQLite store or `connection_config`."""
  with metadata_queries.open_store(layout(output_dir), connection_config) as store:
    runs = metadata_queries.run_ids(store)
    if not runs:
      raise ValueError(f'No pipeline run recorded in the metadata store of {output_dir}')
    if run_id is None:
      run_id = next((r for r in reversed(runs)
                     if metadata_queries.latest_artifact(store, r, 'ModelEvaluation')), runs[-1])
      if run_id != runs[-1]:
        logging.warning('The latest run, %s, has no evaluation: reporting on run %s', runs[-1],
                        run_id)
    if run_id not in runs:
      raise ValueError(f'No run {run_id!r} in the metadata store; runs: {", ".join(runs)}')
    evaluation = metadata_queries.latest_artifact(store, run_id, 'ModelEvaluation')
    if evaluation is None:
      raise ValueError(f'Run {run_id} has no evaluation (did it stop before the Evaluator?)')
    evaluator = _producer(store, evaluation)
    model = _artifact(store, evaluator, 'model', metadata_store_pb2.Event.INPUT)
    return RunArtifacts(
        run_id=run_id, evaluation=evaluation, blessing=_artifact(store, evaluator, 'blessing'),
        model=model,
        baseline_model=_artifact(store, evaluator, 'baseline_model',
                                 metadata_store_pb2.Event.INPUT),
        model_run=_artifact(store, _producer(store, model), 'model_run') if model else None,
        pushed_model=metadata_queries.latest_artifact(store, run_id, 'PushedModel'))


def _markdown(run: RunArtifacts, output_root: str, report_dir: str) -> List[str]:
  eval_config = results.load_eval_config(run.evaluation.uri)
  candidate, baseline = results.model_names(eval_config)
  metrics = results.load_metrics(run.evaluation.uri)
  overall = metrics.get(results.OVERALL, {})
  matrix = results.load_confusion_matrix(run.evaluation.uri, model_name=candidate)
  report = classification_report.classification_report(matrix, labels.CLASS_NAMES)
  save_confusion_matrix_png(matrix, os.path.join(report_dir, CONFUSION_MATRIX_PNG))
  pushed = None
  if run.pushed_model and metadata_queries.custom_property(run.pushed_model, 'pushed'):
    pushed = metadata_queries.custom_property(run.pushed_model, 'pushed_destination')

  lines = [f'# Run report: {run.run_id}', '',
           f'- Generated: {datetime.datetime.now().isoformat(timespec="seconds")}',
           f'- Output folder: `{output_root}`',
           f'- Model: `{run.model.uri if run.model else "n/a"}`',
           f'- Evaluation: `{run.evaluation.uri}`', '']
  lines += _gate_section(
      metadata_queries.custom_property(run.blessing, 'blessed') if run.blessing else None,
      results.load_gate(run.evaluation.uri), pushed, baseline is not None)
  lines += [f'## Classification report (test split, {report.macro_avg.support:g} images, argmax)',
            ''] + classification_report_table(report) + ['']
  auc = [results.MetricId(eval_config_lib.AUC, class_id=i, model_name=candidate)
         for i in range(labels.NUM_CLASSES)]
  auc.append(results.MetricId(eval_config_lib.AUC, macro=True, model_name=candidate))
  lines += ['ROC AUC, one class vs the rest:', ''] + _table(
      ['class', 'ROC AUC'],
      [[name, _fmt(overall.get(metric))]
       for name, metric in zip(labels.CLASS_NAMES + ('macro avg',), auc)]) + ['']
  lines += ['## Confusion matrix', '', 'Rows: true class; columns: predicted class (argmax).', '']
  lines += _table([''] + list(labels.CLASS_NAMES), [
      [name] + [f'{count:g}' for count in row] for name, row in zip(labels.CLASS_NAMES, matrix)])
  lines += ['', f'![Confusion matrix]({CONFUSION_MATRIX_PNG})', '']
  if baseline is not None:
    lines += _baseline_section(overall, candidate, baseline,
                               run.baseline_model.uri if run.baseline_model else 'n/a')
  lines += _slices_section(metrics, candidate)
  return lines + _training_section(run.model_run.uri if run.model_run else None, report_dir)


def render_report(output_dir: str, run_id: Optional[str] = None,
                  connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None) -> str:
  """Writes OUTPUT/reports/<run id>/report.md for `run_id` (default: the latest evaluated run);
  returns its path. `connection_config`: a metadata store other than OUTPUT/metadata.sqlite."""
  run = find_run_artifacts(output_dir, run_id, connection_config)
  paths = layout(output_dir)
  report_dir = os.path.join(paths.reports_dir, _run_dir_name(run.run_id))
  os.makedirs(report_dir, exist_ok=True)
  logging.info('Writing the report of run %s to %s', run.run_id, report_dir)
  path = os.path.join(report_dir, REPORT_FILE)
  with open(path, 'w') as f:
    f.write('\n'.join(_markdown(run, paths.root, report_dir)))
  return path
