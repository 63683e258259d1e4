"""The report's COVID operating point: the threshold stored with the evaluated model and the test
split's sensitivity and specificity at it (components.evaluation.operating_point_figures), the
COVID ROC and precision-recall curves (PNGs), its Markdown section and its JSON."""

import os
from typing import Any, Dict, List, Optional

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt
import numpy as np

from components.evaluation.operating_point_figures import OperatingPointFigures
from pipeline import report_format

ROC_PNG = 'covid_roc.png'
PRECISION_RECALL_PNG = 'covid_precision_recall.png'


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


def operating_point_section(figures: Optional[OperatingPointFigures]) -> List[str]:
  """The threshold, its eval and test sensitivity and specificity, the curves' PNGs."""
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
      report_format.with_ci(sensitivity),
      report_format.with_ci(specificity),
      f'{sensitivity.trials:g}',
      f'{specificity.trials:g}',
    ]
    for split, sensitivity, specificity in (
      ('eval (threshold chosen)', point.sensitivity, point.specificity),
      ('test', figures.sensitivity, figures.specificity),
    )
  ]
  lines += report_format.table(
    ['split', 'sensitivity (95% CI)', 'specificity (95% CI)', 'COVID images', 'other images'],
    rows,
  )
  return lines + [
    '',
    f'![COVID ROC curve]({ROC_PNG}) ![COVID precision-recall curve]({PRECISION_RECALL_PNG})',
    '',
  ]


def operating_point_json(figures: Optional[OperatingPointFigures]) -> Optional[Dict[str, Any]]:
  """The operating point and its test figures (`sensitivity`, `specificity`, with `_ci`); the
  eval figures it was chosen on as `eval_sensitivity`, `eval_specificity`."""
  if figures is None:
    return None
  point = figures.point
  return {
    'class': point.class_name,
    'threshold': point.threshold,
    'target_sensitivity': point.target_sensitivity,
    **report_format.proportion_json('sensitivity', figures.sensitivity),
    **report_format.proportion_json('specificity', figures.specificity),
    'covid_images': int(figures.sensitivity.trials),
    'other_images': int(figures.specificity.trials),
    'eval_sensitivity': point.sensitivity.value,
    'eval_specificity': point.specificity.value,
  }
