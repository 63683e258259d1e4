"""The masking audit's figures (components/audit.py) of an evaluation, with the regions stored with
the model. Read by the run report and the model card."""

import json
import os
from typing import Any, Dict, Optional, Sequence

import tensorflow as tf
from tfx.utils import path_utils

from components import audit
from components import labels
from components.evaluation import eval_config as eval_config_lib
from components.evaluation import results
from components.evaluation.gate import Gate


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
