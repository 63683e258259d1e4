"""`cxr report`: a Markdown report of one pipeline run, read back from ML Metadata.

OUTPUT/reports/<run id>/report.md holds the blessing decision and the gate's thresholds, the
test-split classification report (argmax; the gate's own computation), ROC AUC, the confusion
matrix (also as a PNG heatmap), the comparison with the blessed baseline, metrics by source and
the training curves (PNGs written by the Trainer into its model_run artifact).
"""
import datetime
import glob
import json
import logging
import os
import re
import shutil
from typing import Dict, List, Optional, Sequence

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from components import labels
from components import training_report
from components.evaluation import classification_report
from components.evaluation import eval_config as eval_config_lib
from components.evaluation import results
from pipeline import metadata_queries
from pipeline.output_layout import layout

REPORT_FILE = 'report.md'
CONFUSION_MATRIX_PNG = 'confusion_matrix.png'
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


def classification_report_table(report: classification_report.ClassificationReport) -> List[str]:
  """The seed notebook's classification report as a Markdown table."""
  rows = [[name, _fmt(s.precision), _fmt(s.recall), _fmt(s.f1), f'{s.support:g}']
          for name, s in report.rows()[:len(report.class_names)]]
  rows.append(['accuracy', '', '', _fmt(report.accuracy), f'{report.macro_avg.support:g}'])
  rows += [[name, _fmt(s.precision), _fmt(s.recall), _fmt(s.f1), f'{s.support:g}']
           for name, s in report.rows()[len(report.class_names):]]
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
  history_files = sorted(glob.glob(os.path.join(model_run_uri or '', '**',
                                                training_report.HISTORY_FILE), recursive=True))
  if not model_run_uri or not history_files:
    return ['## Training', '', 'No training history found for this run.', '']
  with open(history_files[0]) as f:
    history = json.load(f)
  series = history.pop('history', {})
  lines = ['## Training', '']
  lines += [f'- {key}: `{json.dumps(value)}`' for key, value in sorted(history.items())]
  if series:
    epochs = max(len(values) for values in series.values())
    lines += ['', f'Last of {epochs} epoch(s): ' + ', '.join(
        f'{key} {values[-1]:.4f}' for key, values in sorted(series.items()) if values)]
  lines.append('')
  for name in training_report.PLOTS:
    source = os.path.join(os.path.dirname(history_files[0]), name)
    if os.path.exists(source):
      shutil.copyfile(source, os.path.join(report_dir, name))
      lines += [f'![{training_report.PLOTS[name][0]}]({name})', '']
  return lines


def _run_dir_name(run_id: str) -> str:
  return re.sub(r'[^A-Za-z0-9._-]', '_', run_id)


def render_report(output_dir: str, run_id: Optional[str] = None) -> str:
  """Writes OUTPUT/reports/<run id>/report.md for `run_id` (default: the latest run)."""
  paths = layout(output_dir)
  if not os.path.exists(paths.metadata_path):
    raise FileNotFoundError(f'No metadata store at {paths.metadata_path}: is {output_dir} the '
                            'output folder of `cxr run`?')
  with metadata_queries.open_store(paths) as store:
    runs = metadata_queries.run_ids(store)
    if not runs:
      raise ValueError(f'No pipeline run recorded in {paths.metadata_path}')
    run_id = run_id or runs[-1]
    if run_id not in runs:
      raise ValueError(f'No run {run_id!r} in {paths.metadata_path}; runs: {", ".join(runs)}')
    artifact = {type_name: metadata_queries.latest_artifact(store, run_id, type_name)
                for type_name in ('ModelEvaluation', 'ModelBlessing', 'ModelRun', 'Model',
                                  'PushedModel')}
  evaluation = artifact['ModelEvaluation']
  if evaluation is None:
    raise ValueError(f'Run {run_id} has no evaluation (did it stop before the Evaluator?)')
  report_dir = os.path.join(paths.reports_dir, _run_dir_name(run_id))
  os.makedirs(report_dir, exist_ok=True)
  logging.info('Writing the report of run %s to %s', run_id, report_dir)

  eval_config = results.load_eval_config(evaluation.uri)
  candidate, baseline = results.model_names(eval_config)
  metrics = results.load_metrics(evaluation.uri)
  matrix = results.load_confusion_matrix(evaluation.uri, model_name=candidate)
  report = classification_report.classification_report(matrix, labels.CLASS_NAMES)
  save_confusion_matrix_png(matrix, os.path.join(report_dir, CONFUSION_MATRIX_PNG))
  blessing, pushed_model = artifact['ModelBlessing'], artifact['PushedModel']
  pushed = (metadata_queries.custom_property(pushed_model, 'pushed_destination')
            if pushed_model is not None and metadata_queries.custom_property(pushed_model, 'pushed')
            else None)
  overall = metrics.get(results.OVERALL, {})

  lines = [f'# Run report: {run_id}', '',
           f'- Generated: {datetime.datetime.now().isoformat(timespec="seconds")}',
           f'- Output folder: `{paths.root}`',
           f'- Model: `{artifact["Model"].uri if artifact["Model"] else "n/a"}`',
           f'- Evaluation: `{evaluation.uri}`', '']
  lines += _gate_section(
      metadata_queries.custom_property(blessing, 'blessed') if blessing else None,
      results.load_gate(evaluation.uri), pushed, baseline is not None)
  lines += [f'## Classification report (test split, {report.macro_avg.support:g} images, argmax)',
            ''] + classification_report_table(report) + ['']
  auc_rows = [[labels.CLASS_NAMES[i], _fmt(overall.get(results.MetricId(
      eval_config_lib.AUC, class_id=i, model_name=candidate)))] for i in range(labels.NUM_CLASSES)]
  auc_rows.append(['macro avg', _fmt(overall.get(results.MetricId(
      eval_config_lib.AUC, macro=True, model_name=candidate)))])
  lines += ['ROC AUC, one class vs the rest:', ''] + _table(['class', 'ROC AUC'], auc_rows) + ['']
  lines += ['## Confusion matrix', '', 'Rows: true class; columns: predicted class (argmax).', '']
  lines += _table([''] + list(labels.CLASS_NAMES), [
      [name] + [f'{count:g}' for count in row] for name, row in zip(labels.CLASS_NAMES, matrix)])
  lines += ['', f'![Confusion matrix]({CONFUSION_MATRIX_PNG})', '']
  if baseline is not None:
    lines += _baseline_section(overall, candidate, baseline,
                               metadata_queries.custom_property(blessing, 'baseline_model') or '')
  lines += _slices_section(metrics, candidate)
  lines += _training_section(artifact['ModelRun'].uri if artifact['ModelRun'] else None,
                             report_dir)
  path = os.path.join(report_dir, REPORT_FILE)
  with open(path, 'w') as f:
    f.write('\n'.join(lines))
  return path
