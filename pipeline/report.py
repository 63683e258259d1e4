"""`cxr report`: a Markdown report of one pipeline run, read back from ML Metadata.

OUTPUT/reports/<run id>/report.md holds the blessing decision and the gate's checks with their
95% intervals, the test-split classification report (argmax, the gate's own computation: per
class precision, recall, specificity, NPV with Wilson intervals, F1, support), ROC AUC, the
confusion matrix (also as a PNG heatmap), the COVID operating point (the threshold stored with
the evaluated model, components.operating_point) with the test sensitivity and specificity at it
and the COVID ROC and precision-recall curves, the comparison with the blessed baseline, metrics
by source, the class x source association of the ingested data (Cramér's V per split, the test
classes confounded with their source), the calibration (the Trainer's temperature and eval-split
figures before and after it, the test split's ECE and Brier score from the Evaluator, a
reliability diagram) and the training curves (PNGs written by the Trainer into its model_run
artifact). `report_json` gives the same figures as one JSON-ready dict (`cxr report --json`): its
`confounding` is the ingestion summary's entry (components/ingestion/confounding.py; None for runs
ingested before it existed), `operating_point` is None for a model stored without one, and
`calibration` None for a model trained without it.
"""

import dataclasses
import datetime
import json
import logging
import os
import re
from typing import Any, Dict, List, Optional, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt
from ml_metadata.proto import metadata_store_pb2
import numpy as np
import tensorflow as tf
from tfx.utils import path_utils

from components import labels
from components import operating_point
from components import training_report
from components.evaluation import classification_report
from components.evaluation import eval_config as eval_config_lib
from components.evaluation import results
from components.ingestion import manifest
from components.ingestion.options import SPLITS
from pipeline import metadata_queries
from pipeline.output_layout import layout

REPORT_FILE = 'report.md'
CONFUSION_MATRIX_PNG = 'confusion_matrix.png'
ROC_PNG = 'covid_roc.png'
PRECISION_RECALL_PNG = 'covid_precision_recall.png'
_artifact = metadata_queries.execution_artifact
COVID = labels.CLASS_NAMES.index('COVID')

_DISPLAY_NAMES = {
  eval_config_lib.ACCURACY: 'accuracy',
  eval_config_lib.ARGMAX_RECALL: 'recall',
  eval_config_lib.ARGMAX_PRECISION: 'precision',
  eval_config_lib.ARGMAX_F1: 'F1',
  eval_config_lib.AUC: 'ROC AUC',
  eval_config_lib.TOP_LABEL_ECE: 'top-label ECE',
}
_PROPORTIONS = ('precision', 'recall', 'specificity', 'npv')  # ClassFigures with an interval


def _display(metric: results.MetricId) -> str:
  name = _DISPLAY_NAMES.get(metric.name, metric.name)
  if metric.class_id is not None:
    name += f' ({labels.CLASS_NAMES[metric.class_id]})'
  if metric.macro:
    name += ' (macro avg)'
  return name + (' change vs baseline' if metric.is_diff else '')


def check_name(check: results.GateCheck) -> str:
  """'accuracy', 'COVID recall', 'accuracy change vs baseline'."""
  figure = check.figure
  name = _DISPLAY_NAMES.get(figure.name, figure.name)
  if figure.class_id is not None:
    name = f'{labels.CLASS_NAMES[figure.class_id]} {name}'
  return name + (' change vs baseline' if figure.is_diff else '')


def _interval(ci: Optional[classification_report.Interval], digits: int = 2) -> str:
  return f'{ci.lower:.{digits}f}–{ci.upper:.{digits}f}' if ci else 'n/a'


def describe(check: results.GateCheck) -> str:
  """One line, e.g. 'COVID recall 1.00 (95% CI 0.57–1.00, 5 images): lower bound below 0.80'."""
  name = check_name(check)
  if check.is_maximum:
    verdict = 'at or below' if check.passed else 'above'
  else:
    verdict = 'at or above' if check.passed else 'below'
  if check.kind == 'change':
    return f'{name} {_fmt(check.value, signed=True)}: {verdict} {check.threshold:+.2f}'
  evidence = f'95% CI {_interval(check.ci)}' if check.ci else 'no interval'
  if check.images is not None:
    evidence += f', {check.images:g} images'
  judged = 'lower bound ' if check.on_lower_bound else ''
  value = 'n/a' if check.value is None else f'{check.value:.2f}'
  return f'{name} {value} ({evidence}): {judged}{verdict} {check.threshold:.2f}'


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join(['---'] * len(header)) + '|']
  return lines + ['| ' + ' | '.join(row) + ' |' for row in rows]


def _fmt(value: Optional[float], signed: bool = False) -> str:
  if value is None or np.isnan(value):
    return 'n/a'
  return f'{value:+.4f}' if signed else f'{value:.4f}'


def _with_ci(proportion: classification_report.Proportion) -> str:
  return f'{_fmt(proportion.value)} ({_interval(proportion.ci, 3)})'


def classification_report_table(report: classification_report.ClassificationReport) -> List[str]:
  """Per class at argmax, each proportion with its 95% Wilson interval; the averages as in the
  seed notebook's classification report; then the accuracy with its interval."""
  rows = [
    [name]
    + [_with_ci(getattr(figures, p)) for p in _PROPORTIONS]
    + [_fmt(figures.f1), f'{figures.support:g}']
    for name, figures in zip(report.class_names, report.per_class)
  ]
  rows += [
    [
      name,
      _fmt(scores.precision),
      _fmt(scores.recall),
      '',
      '',
      _fmt(scores.f1),
      f'{scores.support:g}',
    ]
    for name, scores in (('macro avg', report.macro_avg), ('weighted avg', report.weighted_avg))
  ]
  header = [
    '',
    'precision (95% CI)',
    'recall (95% CI)',
    'specificity (95% CI)',
    'NPV (95% CI)',
    'f1-score',
    'support',
  ]
  return _table(header, rows) + [
    '',
    f'Accuracy {_fmt(report.accuracy.value)} (95% CI {_interval(report.accuracy.ci, 3)}), '
    f'{report.accuracy.trials:g} images.',
  ]


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
    ax.text(
      j,
      i,
      f'{count:g}',
      ha='center',
      va='center',
      color='white' if count > matrix.max() / 2 else 'black',
    )
  fig.colorbar(image, ax=ax)
  fig.savefig(path, dpi=100, bbox_inches='tight')
  plt.close(fig)


@dataclasses.dataclass(frozen=True)
class OperatingPointFigures:
  """The evaluated model's COVID operating point and the test split's figures at it."""

  point: operating_point.OperatingPoint  # as stored by the Trainer, with its eval counts
  sensitivity: classification_report.Proportion  # on the test split
  specificity: classification_report.Proportion
  counts: results.ThresholdCounts  # COVID counts at every threshold: the curves
  index: int  # the operating threshold's position in `counts`


def load_operating_point(
  model_uri: str, evaluation_uri: str, candidate: str
) -> Optional[OperatingPointFigures]:
  """The operating point stored with the model and the test counts at its threshold; None when
  the model has none or the evaluation has no COVID counts (both predate operating points)."""
  try:
    point = operating_point.read(path_utils.serving_model_dir(model_uri))
  except FileNotFoundError:
    return None
  counts = results.load_threshold_counts(evaluation_uri, COVID, model_name=candidate)
  if counts is None:
    return None
  i = counts.index(point.threshold)
  tp, fn = counts.true_positives[i], counts.false_negatives[i]
  tn, fp = counts.true_negatives[i], counts.false_positives[i]
  return OperatingPointFigures(
    point=point,
    sensitivity=classification_report.Proportion(tp, tp + fn),
    specificity=classification_report.Proportion(tn, tn + fp),
    counts=counts,
    index=i,
  )


def _rate(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
  """numerator / denominator, NaN (a gap in a curve) where the denominator is 0."""
  return np.divide(
    numerator, denominator, out=np.full(len(numerator), np.nan), where=denominator > 0
  )


def save_curve_pngs(figures: OperatingPointFigures, report_dir: str) -> None:
  """The COVID ROC and precision-recall curves (one point per threshold of the grid), the
  operating point marked: ROC_PNG and PRECISION_RECALL_PNG in report_dir."""
  c = figures.counts
  recall = _rate(c.true_positives, c.true_positives + c.false_negatives)
  false_positive_rate = _rate(c.false_positives, c.false_positives + c.true_negatives)
  precision = _rate(c.true_positives, c.true_positives + c.false_positives)
  marker = f'operating point: P(COVID) > {figures.point.threshold:g}'
  for name, x, y, xlabel, ylabel, title in (
    (
      ROC_PNG,
      false_positive_rate,
      recall,
      'false positive rate (1 − specificity)',
      'sensitivity (recall)',
      'COVID ROC curve (test split)',
    ),
    (
      PRECISION_RECALL_PNG,
      recall,
      precision,
      'recall (sensitivity)',
      'precision (PPV)',
      'COVID precision-recall curve (test split)',
    ),
  ):
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot(x, y, color='tab:blue')
    ax.plot(x[figures.index], y[figures.index], 'o', color='tab:red', label=marker)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc='lower right' if name == ROC_PNG else 'lower left')
    fig.savefig(os.path.join(report_dir, name), dpi=100, bbox_inches='tight')
    plt.close(fig)


def _operating_point_section(figures: Optional[OperatingPointFigures]) -> List[str]:
  lines = ['## COVID operating point', '']
  if figures is None:
    return lines + [
      'No operating point: the model was stored without one, or the evaluation has no COVID '
      'counts at thresholds (both predate operating points).',
      '',
    ]
  point = figures.point
  lines += [
    f'An image is COVID positive (`covid_positive` of the served model and `cxr predict`) when '
    f'P(COVID) > {point.threshold:g}: the highest threshold whose sensitivity on the eval split '
    f'reaches the target, {point.target_sensitivity:g}, chosen by the Trainer before the test '
    'split was seen. Intervals: 95% Wilson score.',
    '',
  ]
  rows = [
    [
      split,
      _with_ci(sensitivity),
      _with_ci(specificity),
      f'{sensitivity.trials:g}',
      f'{specificity.trials:g}',
    ]
    for split, sensitivity, specificity in (
      ('eval (threshold chosen)', point.sensitivity, point.specificity),
      ('test', figures.sensitivity, figures.specificity),
    )
  ]
  lines += _table(
    ['split', 'sensitivity (95% CI)', 'specificity (95% CI)', 'COVID images', 'other images'],
    rows,
  )
  return lines + [
    '',
    f'![COVID ROC curve]({ROC_PNG}) ![COVID precision-recall curve]({PRECISION_RECALL_PNG})',
    '',
  ]


def _gate_section(
  blessed: Optional[bool],
  checks: List[results.GateCheck],
  pushed: Optional[str],
  has_baseline: bool,
) -> List[str]:
  verdict = {True: 'BLESSED', False: 'NOT BLESSED'}.get(blessed, 'NOT EVALUATED')
  lines = [
    '## Decision',
    '',
    f'**{verdict}**: ' + (f'pushed to `{pushed}`.' if pushed else 'not pushed.'),
    '',
  ]
  rows = [
    [
      check_name(c),
      'candidate − baseline'
      if c.kind == 'change'
      else ('lower 95% bound' if c.on_lower_bound else 'point'),
      c.bound,
      _fmt(c.value, signed=c.kind == 'change'),
      _interval(c.ci, 3),
      'n/a' if c.images is None else f'{c.images:g}',
      'pass' if c.passed else '**FAIL**',
    ]
    for c in checks
  ]
  lines += _table(
    [
      'gate check (overall test split)',
      'judged on',
      'threshold',
      'value',
      '95% CI',
      'images',
      'result',
    ],
    rows,
  )
  lines += [''] + [f'- {describe(c)}' for c in checks]
  if not has_baseline:
    lines += [
      '',
      'No blessed baseline model yet: the accuracy change threshold was not applied '
      '(first blessing).',
    ]
  return lines + ['']


def _baseline_section(
  overall: Dict[results.MetricId, float], candidate: str, baseline: str, baseline_uri: str
) -> List[str]:
  metrics = (
    [results.MetricId(eval_config_lib.ACCURACY)]
    + [
      results.MetricId(eval_config_lib.ARGMAX_RECALL, class_id=i) for i in range(labels.NUM_CLASSES)
    ]
    + [
      results.MetricId(eval_config_lib.ARGMAX_F1, macro=True),
      results.MetricId(eval_config_lib.AUC, macro=True),
    ]
  )
  rows = []
  for metric in metrics:
    new = overall.get(metric._replace(model_name=candidate))
    old = overall.get(metric._replace(model_name=baseline))
    change = new - old if new is not None and old is not None else None
    rows.append([_display(metric), _fmt(new), _fmt(old), _fmt(change, signed=True)])
  return (
    ['## Comparison with the blessed baseline', '', f'Baseline model: `{baseline_uri}`', '']
    + _table(['metric', 'candidate', 'baseline', 'change'], rows)
    + ['']
  )


def _slices_section(metrics: Dict[str, Dict[results.MetricId, float]], model: str) -> List[str]:
  with_ci = [
    results.MetricId(eval_config_lib.ACCURACY, model_name=model),
    results.MetricId(eval_config_lib.ARGMAX_RECALL, class_id=COVID, model_name=model),
  ]
  f1 = results.MetricId(eval_config_lib.ARGMAX_F1, macro=True, model_name=model)
  rows = []
  for slice_name, values in sorted(metrics.items()):
    count = values.get(results.MetricId(eval_config_lib.EXAMPLE_COUNT, model_name=model), 0.0)
    cells = [slice_name, f'{count:g}']
    for metric in with_ci:
      ends = [
        values.get(metric._replace(name=metric.name + end))
        for end in (eval_config_lib.LOWER, eval_config_lib.UPPER)
      ]
      ci = classification_report.Interval(*ends) if None not in ends else None
      cells.append(f'{_fmt(values.get(metric))} ({_interval(ci, 3)})')
    rows.append(cells + [_fmt(values.get(f1))])
  return (
    ['## By source', '', 'Reported, not gated (a source may be small or hold one class).', '']
    + _table(
      ['slice', 'examples'] + [f'{_display(m)} (95% CI)' for m in with_ci] + [_display(f1)], rows
    )
    + ['']
  )


def _sources_section(confounding: Optional[Dict[str, Any]]) -> List[str]:
  """Class x source association per split (Cramér's V and the table), and the confounding
  warning."""
  lines = ['## Sources and confounding', '']
  if confounding is None:
    return lines + ['No source figures recorded for the ingested data of this run.', '']
  if confounding['warning']:  # an evaluated run: ingestion went on, so it was allowed
    lines += [f'**WARNING**: {confounding["warning"]} (allowed by --allow-confounded-sources).', '']
  lines += [
    "Cramér's V of class x source: 0 when every source holds the classes alike, 1 when each "
    'source holds one class.',
    '',
  ]
  for split in SPLITS:
    figures = confounding[split]
    v = figures['note'] if figures['cramers_v'] is None else f'{figures["cramers_v"]:.3f}'
    lines += [f"{split}: Cramér's V {v}", '']
    lines += _table(
      ['source'] + list(labels.CLASS_NAMES),
      [
        [source] + [f'{row.get(c, 0)}' for c in labels.CLASS_NAMES]
        for source, row in figures['table'].items()
      ],
    ) + ['']
  return lines


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
    lines += [
      '',
      f'Last of {epochs} epoch(s): '
      + ', '.join(f'{key} {values[-1]:.4f}' for key, values in sorted(series.items()) if values),
    ]
  lines.append('')
  for name, (title, _, _) in training_report.PLOTS.items():
    source = os.path.join(model_run_uri, name)
    if tf.io.gfile.exists(source):
      tf.io.gfile.copy(source, os.path.join(report_dir, name), overwrite=True)
      lines += [f'![{title}]({name})', '']
  return lines


def load_calibration_record(model_run_uri: Optional[str]) -> Optional[Dict[str, Any]]:
  """The Trainer's calibration record (eval split), or None when the model has none."""
  path = os.path.join(model_run_uri or '', training_report.CALIBRATION_FILE)
  if not model_run_uri or not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def calibration_json(
  record: Optional[Dict[str, Any]], overall: Dict[results.MetricId, float], model: str
) -> Optional[Dict[str, Any]]:
  """The eval-split figures of the Trainer's `record` (where T was fitted), and under 'test' the
  Evaluator's figures of the exported, temperature-scaled model on the test split."""
  if record is None:
    return None
  return {
    'split': 'eval',
    **record,
    'test': {
      'split': 'test',
      'images': overall.get(results.MetricId(eval_config_lib.EXAMPLE_COUNT, model_name=model)),
      'ece': overall.get(results.MetricId(eval_config_lib.TOP_LABEL_ECE, model_name=model)),
      'brier': overall.get(results.MetricId(eval_config_lib.BRIER, model_name=model)),
    },
  }


def _calibration_section(
  figures: Optional[Dict[str, Any]], model_run_uri: Optional[str], report_dir: str
) -> List[str]:
  lines = ['## Calibration', '']
  if figures is None:
    return lines + [
      'No calibration record for this model (trained without temperature scaling).',
      '',
    ]
  test = figures['test']
  lines += [
    f'Temperature scaling: T = {figures["temperature"]:.4g}, fitted on the eval split '
    f'({figures["images"]:g} images) to minimise the NLL and folded into the exported model: '
    'every signature serves softmax(logits / T), with the same argmax. The Evaluator scores '
    'that scaled model, so the test split has no "before" figures. ECE: top label, 15 '
    'equal-width bins.',
    '',
  ]
  rows = [
    [
      f'eval ({figures["images"]:g} images)',
      name,
      _fmt(figures[f'{key}_before']),
      _fmt(figures[key]),
    ]
    for key, name in (('nll', 'NLL'), ('ece', 'top-label ECE'), ('brier', 'Brier score'))
  ]
  test_images = 'n/a' if test['images'] is None else f'{test["images"]:g}'
  rows += [
    [f'test ({test_images} images)', name, 'n/a', _fmt(test[key])]
    for key, name in (('ece', 'top-label ECE'), ('brier', 'Brier score'))
  ]
  lines += _table(['split', 'figure', 'before scaling', 'after scaling'], rows) + ['']
  source = os.path.join(model_run_uri or '', training_report.RELIABILITY_PNG)
  if model_run_uri and tf.io.gfile.exists(source):
    tf.io.gfile.copy(source, os.path.join(report_dir, training_report.RELIABILITY_PNG), True)
    lines += [f'![Reliability diagram, eval split]({training_report.RELIABILITY_PNG})', '']
  return lines


def _run_dir_name(run_id: str) -> str:
  return re.sub(r'[^A-Za-z0-9._-]', '_', run_id)


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
  ingest_report: Optional[metadata_store_pb2.Artifact]  # of the examples the Evaluator read

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
      ingest_report=_artifact(store, _producer(store, examples), 'report') if examples else None,
    )


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """What the Evaluator wrote for a run, read back: names, metrics, matrix, report, gate."""

  candidate: str
  baseline: Optional[str]
  metrics: Dict[str, Dict[results.MetricId, float]]
  matrix: np.ndarray
  report: classification_report.ClassificationReport
  checks: List[results.GateCheck]


def load_evaluation(evaluation_uri: str) -> Evaluation:
  """The candidate's figures and the gate's checks from an Evaluator output folder."""
  candidate, baseline = results.model_names(results.load_eval_config(evaluation_uri))
  matrix = results.load_confusion_matrix(evaluation_uri, model_name=candidate)
  return Evaluation(
    candidate=candidate,
    baseline=baseline,
    metrics=results.load_metrics(evaluation_uri),
    matrix=matrix,
    report=classification_report.classification_report(matrix, labels.CLASS_NAMES),
    checks=results.load_gate(evaluation_uri),
  )


def _markdown(run: RunArtifacts, output_root: str, report_dir: str) -> List[str]:
  evaluation = load_evaluation(run.evaluation.uri)
  candidate, report, matrix = evaluation.candidate, evaluation.report, evaluation.matrix
  overall = evaluation.metrics.get(results.OVERALL, {})
  save_confusion_matrix_png(matrix, os.path.join(report_dir, CONFUSION_MATRIX_PNG))

  lines = [
    f'# Run report: {run.run_id}',
    '',
    f'- Generated: {datetime.datetime.now().isoformat(timespec="seconds")}',
    f'- Output folder: `{output_root}`',
    f'- Model: `{run.model.uri if run.model else "n/a"}`',
    f'- Evaluation: `{run.evaluation.uri}`',
    '',
  ]
  lines += _gate_section(
    run.blessed(), evaluation.checks, run.pushed_to(), evaluation.baseline is not None
  )
  lines += [
    f'## Classification report (test split, {report.accuracy.trials:g} images, argmax)',
    '',
    'Each class against the rest; intervals: 95% Wilson score.',
    '',
  ]
  lines += classification_report_table(report) + ['']
  auc = [
    results.MetricId(eval_config_lib.AUC, class_id=i, model_name=candidate)
    for i in range(labels.NUM_CLASSES)
  ]
  auc.append(results.MetricId(eval_config_lib.AUC, macro=True, model_name=candidate))
  lines += (
    ['ROC AUC, one class vs the rest:', '']
    + _table(
      ['class', 'ROC AUC'],
      [
        [name, _fmt(overall.get(metric))]
        for name, metric in zip(labels.CLASS_NAMES + ('macro avg',), auc)
      ],
    )
    + ['']
  )
  lines += ['## Confusion matrix', '', 'Rows: true class; columns: predicted class (argmax).', '']
  lines += _table(
    [''] + list(labels.CLASS_NAMES),
    [[name] + [f'{count:g}' for count in row] for name, row in zip(labels.CLASS_NAMES, matrix)],
  )
  lines += ['', f'![Confusion matrix]({CONFUSION_MATRIX_PNG})', '']
  figures = _run_operating_point(run, evaluation)
  if figures:
    save_curve_pngs(figures, report_dir)
  lines += _operating_point_section(figures)
  if evaluation.baseline is not None:
    lines += _baseline_section(
      overall,
      candidate,
      evaluation.baseline,
      run.baseline_model.uri if run.baseline_model else 'n/a',
    )
  lines += _slices_section(evaluation.metrics, candidate)
  lines += _sources_section(run.confounding())
  model_run_uri = run.model_run.uri if run.model_run else None
  lines += _calibration_section(
    calibration_json(load_calibration_record(model_run_uri), overall, candidate),
    model_run_uri,
    report_dir,
  )
  return lines + _training_section(model_run_uri, report_dir)


def _run_operating_point(
  run: RunArtifacts, evaluation: Evaluation
) -> Optional[OperatingPointFigures]:
  if run.model is None:
    return None
  return load_operating_point(run.model.uri, run.evaluation.uri, evaluation.candidate)


def _proportion_json(name: str, proportion: classification_report.Proportion) -> Dict[str, Any]:
  return {name: proportion.value, f'{name}_ci': list(proportion.ci)}


def _operating_point_json(figures: Optional[OperatingPointFigures]) -> Optional[Dict[str, Any]]:
  """The operating point and its test figures (`sensitivity`, `specificity`, with `_ci`); the
  eval figures it was chosen on as `eval_sensitivity`, `eval_specificity`."""
  if figures is None:
    return None
  point = figures.point
  return {
    'class': point.class_name,
    'threshold': point.threshold,
    'target_sensitivity': point.target_sensitivity,
    **_proportion_json('sensitivity', figures.sensitivity),
    **_proportion_json('specificity', figures.specificity),
    'covid_images': figures.sensitivity.trials,
    'other_images': figures.specificity.trials,
    'eval_sensitivity': point.sensitivity.value,
    'eval_specificity': point.specificity.value,
  }


def report_json(
  output_dir: str,
  run_id: Optional[str] = None,
  connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
) -> Dict[str, Any]:
  """The figures of the run's report as one JSON-ready dict (see the module docstring)."""
  run = find_run_artifacts(output_dir, run_id, connection_config)
  evaluation = load_evaluation(run.evaluation.uri)
  report = evaluation.report
  checks = [
    {
      'name': check_name(c),
      'metric': c.metric.name,
      'judged_on': c.kind if c.kind == 'change' else ('lower95' if c.on_lower_bound else 'point'),
      'threshold': c.threshold,
      'value': c.value,
      'ci': list(c.ci) if c.ci else None,
      'images': c.images,
      'passed': c.passed,
      'text': describe(c),
    }
    for c in evaluation.checks
  ]
  classes = {}
  for name, figures in zip(report.class_names, report.per_class):
    classes[name] = {}
    for proportion in _PROPORTIONS:
      classes[name].update(_proportion_json(proportion, getattr(figures, proportion)))
    classes[name].update(f1=figures.f1, support=figures.support)
  return {
    'run_id': run.run_id,
    'blessed': bool(run.blessed()),
    'pushed_to': run.pushed_to(),
    'checks': checks,
    'images': report.accuracy.trials,
    **_proportion_json('accuracy', report.accuracy),
    'classes': classes,
    'calibration': calibration_json(
      load_calibration_record(run.model_run.uri if run.model_run else None),
      evaluation.metrics.get(results.OVERALL, {}),
      evaluation.candidate,
    ),
    'operating_point': _operating_point_json(_run_operating_point(run, evaluation)),
    'confounding': run.confounding(),
  }


def render_report(
  output_dir: str,
  run_id: Optional[str] = None,
  connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
) -> str:
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
