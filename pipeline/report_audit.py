"""The report's masking audit (components/audit.py): accuracy and COVID recall as served, with the
lung fields hidden and with the border band hidden, chance, and whether a shortcut is suspected."""

import json
import os
from typing import Any, Dict, List, Optional, Sequence

import tensorflow as tf
from tfx.utils import path_utils

from components import audit
from components import labels
from components.evaluation import eval_config as eval_config_lib
from components.evaluation import results
from components.evaluation.gate import Gate
from pipeline import report_format


def load_regions(model_uri: Optional[str]) -> Optional[audit.Regions]:
  """The regions stored with the model (None: no model, or exported before the audit)."""
  if not model_uri:
    return None
  path = os.path.join(path_utils.serving_model_dir(model_uri), audit.REGIONS_FILE)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return audit.Regions.from_json(json.load(f))


def audit_json(
  overall: Dict[results.MetricId, float],
  checks: Sequence[results.GateCheck],
  model: str,
  regions: Optional[audit.Regions],
) -> Optional[Dict[str, Any]]:
  """The audit's figures on the overall test slice (None: evaluated before the audit existed).

  `shortcut_margin` is the gate's (its threshold on the lungs-hidden accuracy above chance), or
  the default margin when the run allowed shortcuts (`gated` false): the suspicion is reported
  either way.
  """

  def figure(name, output_name='', class_id=None):
    metric = results.MetricId(name, class_id, model_name=model, output_name=output_name)
    return overall.get(metric)

  above_chance = figure(eval_config_lib.ACCURACY_ABOVE_CHANCE, audit.LUNGS_HIDDEN)
  if above_chance is None:
    return None
  lungs_hidden = figure(eval_config_lib.ACCURACY, audit.LUNGS_HIDDEN)
  gate_check = next(
    (
      c
      for c in checks
      if c.metric.name == eval_config_lib.ACCURACY_ABOVE_CHANCE
      and c.metric.output_name == audit.LUNGS_HIDDEN
    ),
    None,
  )
  margin = gate_check.threshold if gate_check else Gate().shortcut_margin
  recall = eval_config_lib.ARGMAX_RECALL
  return {
    'accuracy': figure(eval_config_lib.ACCURACY),
    'covid_recall': figure(recall, class_id=labels.COVID),
    'chance': lungs_hidden - above_chance,
    'lungs_hidden_accuracy': lungs_hidden,
    'lungs_hidden_covid_recall': figure(recall, audit.LUNGS_HIDDEN, labels.COVID),
    'borders_hidden_accuracy': figure(eval_config_lib.ACCURACY, audit.BORDERS_HIDDEN),
    'borders_hidden_covid_recall': figure(recall, audit.BORDERS_HIDDEN, labels.COVID),
    'shortcut_margin': margin,
    'shortcut_suspected': audit.shortcut_suspected(above_chance, margin),
    'gated': gate_check is not None,
    'regions': regions.to_json() if regions else None,
  }


def audit_section(figures: Optional[Dict[str, Any]]) -> List[str]:
  """The audit's table, its verdict in words and the regions it hid."""
  lines = ['## Shortcut audit (masking)', '']
  if figures is None:
    return lines + ['Not audited: this evaluation predates the masking audit.', '']
  fmt = report_format.fmt
  lines += report_format.table(
    ['test split', 'accuracy', 'COVID recall'],
    [
      ['as served', fmt(figures['accuracy']), fmt(figures['covid_recall'])],
      [
        'lung fields hidden',
        fmt(figures['lungs_hidden_accuracy']),
        fmt(figures['lungs_hidden_covid_recall']),
      ],
      [
        'border band hidden',
        fmt(figures['borders_hidden_accuracy']),
        fmt(figures['borders_hidden_covid_recall']),
      ],
    ],
  )
  chance, margin = figures['chance'], figures['shortcut_margin']
  rule = f'rule: shortcut suspected above chance {chance:.2f} + {margin:g}'
  if figures['shortcut_suspected']:
    verdict = (
      f'**Shortcut suspected**: with the lung fields hidden the model still reaches accuracy '
      f'{figures["lungs_hidden_accuracy"]:.2f} ({rule}); it classifies from something other than '
      'the lungs (markers, position, the source). '
      + (
        'Not blessed by default.'
        if figures['gated']
        else 'Blessing allowed anyway (`--allow-shortcuts`).'
      )
    )
  else:
    verdict = (
      f'No shortcut suspected: with the lung fields hidden, accuracy falls to '
      f'{figures["lungs_hidden_accuracy"]:.2f} ({rule}).'
    )
  lines += ['', verdict, '', 'Hidden regions (each replaced by the image mean):', '']
  regions = figures['regions']
  lines += (
    [f'- {line}' for line in audit.describe(audit.Regions.from_json(regions))]
    if regions
    else ['- not recorded with this model']
  )
  return lines + ['']
