"""Shared by the `cxr report` modules: display names of metrics and gate checks, number and
interval formats, Markdown tables, a proportion as JSON."""

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from components import audit
from components import labels
from components.evaluation import classification_report
from components.evaluation import eval_config as eval_config_lib
from components.evaluation import results

_DISPLAY_NAMES = {
  eval_config_lib.ACCURACY: 'accuracy',
  eval_config_lib.ARGMAX_RECALL: 'recall',
  eval_config_lib.ARGMAX_PRECISION: 'precision',
  eval_config_lib.ARGMAX_F1: 'F1',
  eval_config_lib.AUC: 'ROC AUC',
  eval_config_lib.TOP_LABEL_ECE: 'top-label ECE',
  eval_config_lib.ACCURACY_ABOVE_CHANCE: 'accuracy above chance',
}
_OUTPUT_PREFIXES = {audit.LUNGS_HIDDEN: 'lungs-hidden ', audit.BORDERS_HIDDEN: 'borders-hidden '}


def metric_name(metric: results.MetricId) -> str:
  """'accuracy', 'recall (COVID)', 'F1 (macro avg)', 'accuracy change vs baseline'."""
  name = _OUTPUT_PREFIXES.get(metric.output_name, '') + _DISPLAY_NAMES.get(metric.name, metric.name)
  if metric.class_id is not None:
    name += f' ({labels.CLASS_NAMES[metric.class_id]})'
  if metric.macro:
    name += ' (macro avg)'
  return name + (' change vs baseline' if metric.is_diff else '')


def check_name(check: results.GateCheck) -> str:
  """'accuracy', 'COVID recall', 'accuracy change vs baseline', 'lungs-hidden accuracy above
  chance'."""
  figure = check.figure
  name = _DISPLAY_NAMES.get(figure.name, figure.name)
  if figure.class_id is not None:
    name = f'{labels.CLASS_NAMES[figure.class_id]} {name}'
  name = _OUTPUT_PREFIXES.get(figure.output_name, '') + name
  return name + (' change vs baseline' if figure.is_diff else '')


def interval(ci: Optional[classification_report.Interval], digits: int = 2) -> str:
  """'0.57–1.00' ('n/a' without an interval)."""
  return f'{ci.lower:.{digits}f}–{ci.upper:.{digits}f}' if ci else 'n/a'


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
  """The lines of a Markdown table."""
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join(['---'] * len(header)) + '|']
  return lines + ['| ' + ' | '.join(row) + ' |' for row in rows]


def fmt(value: Optional[float], signed: bool = False) -> str:
  """Four decimals ('n/a' for None or NaN), with a sign when `signed`."""
  if value is None or np.isnan(value):
    return 'n/a'
  return f'{value:+.4f}' if signed else f'{value:.4f}'


def with_ci(proportion: classification_report.Proportion) -> str:
  """'0.9500 (0.900–0.980)'."""
  return f'{fmt(proportion.value)} ({interval(proportion.ci, 3)})'


def proportion_json(name: str, proportion: classification_report.Proportion) -> Dict[str, Any]:
  """{name: value, name_ci: [lower, upper]}."""
  return {name: proportion.value, f'{name}_ci': list(proportion.ci)}
