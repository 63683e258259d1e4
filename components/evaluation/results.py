"""Reads an Evaluator output folder (TFMA metrics, plots, validation) into plain Python values."""
import dataclasses
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.writers import eval_config_writer

from components import labels
from components.evaluation import argmax_metrics
from components.evaluation import classification_report
from components.evaluation import eval_config as eval_config_lib

OVERALL = 'Overall'


class MetricId(NamedTuple):
  """A metric of the evaluation: its name, class (binarized) or macro average, model, diff."""
  name: str
  class_id: Optional[int] = None
  macro: bool = False
  model_name: str = ''
  is_diff: bool = False


def _metric_id(key: metric_types.MetricKey) -> MetricId:
  return MetricId(name=key.name,
                  class_id=key.sub_key.class_id if key.sub_key else None,
                  macro=bool(key.aggregation_type and key.aggregation_type.macro_average),
                  model_name=key.model_name, is_diff=key.is_diff)


def _slice_name(slice_key_proto) -> str:
  return tfma.slicer.stringify_slice_key(tfma.slicer.deserialize_slice_key(slice_key_proto))


def load_metrics(evaluation_uri: str) -> Dict[str, Dict[MetricId, float]]:
  """{slice name ('Overall', 'source:Test', ...): {MetricId: value}} of the scalar metrics."""
  result = {}
  for metrics_for_slice in tfma.load_metrics(evaluation_uri):
    values = result.setdefault(_slice_name(metrics_for_slice.slice_key), {})
    for item in metrics_for_slice.metric_keys_and_values:
      if item.value.HasField('double_value'):
        values[_metric_id(metric_types.MetricKey.from_proto(item.key))] = (
            item.value.double_value.value)
  return result


def load_confusion_matrix(evaluation_uri: str, model_name: str = '',
                          slice_name: str = OVERALL) -> np.ndarray:
  """Argmax confusion matrix (rows: true class, columns: predicted) of one model and slice."""
  for plots_for_slice in tfma.load_plots(evaluation_uri):
    if _slice_name(plots_for_slice.slice_key) != slice_name:
      continue
    for item in plots_for_slice.plot_keys_and_values:
      if (item.key.name == eval_config_lib.CONFUSION_MATRIX_PLOT
          and item.key.model_name == model_name):
        for matrix in item.value.multi_class_confusion_matrix_at_thresholds.matrices:
          if matrix.threshold == argmax_metrics.ARGMAX_THRESHOLD:
            return classification_report.confusion_matrix(
                ((e.actual_class_id, e.predicted_class_id, e.num_weighted_examples)
                 for e in matrix.entries), labels.NUM_CLASSES)
  raise ValueError(f'No confusion matrix for model {model_name!r}, slice {slice_name!r} '
                   f'in {evaluation_uri}')


def load_eval_config(evaluation_uri: str) -> tfma.EvalConfig:
  """The EvalConfig the Evaluator ran with (model names and baseline filled in)."""
  eval_config = eval_config_writer.load_eval_run(evaluation_uri)[0]
  if eval_config is None:
    raise ValueError(f'No evaluation (eval_config.json) in {evaluation_uri}')
  return eval_config


def model_names(eval_config: tfma.EvalConfig) -> Tuple[str, Optional[str]]:
  """(candidate model name, baseline model name or None)."""
  baseline = next((s.name for s in eval_config.model_specs if s.is_baseline), None)
  candidate = next(s.name for s in eval_config.model_specs if not s.is_baseline)
  return candidate, baseline


@dataclasses.dataclass(frozen=True)
class GateCheck:
  """One threshold of the gate and what the candidate measured."""
  metric: MetricId
  kind: str            # 'value' (absolute bound) or 'change' (vs the baseline)
  bound: str           # e.g. '>= 0.8'
  measured: Optional[float]
  passed: bool


def _bound(threshold) -> str:
  if isinstance(threshold, tfma.GenericValueThreshold):
    parts = []
    if threshold.HasField('lower_bound'):
      parts.append(f'>= {threshold.lower_bound.value:g}')
    if threshold.HasField('upper_bound'):
      parts.append(f'<= {threshold.upper_bound.value:g}')
    return ' and '.join(parts)
  higher = threshold.direction == tfma.MetricDirection.HIGHER_IS_BETTER
  parts = []
  if threshold.HasField('absolute'):
    parts.append(f'{">=" if higher else "<="} {threshold.absolute.value + 0.0:+g} (absolute)')
  if threshold.HasField('relative'):
    parts.append(f'{">=" if higher else "<="} {threshold.relative.value + 0.0:+g} (relative)')
  return ' and '.join(parts)


def load_gate(evaluation_uri: str) -> List[GateCheck]:
  """Every threshold the Evaluator judged on the overall slice, its value and its verdict."""
  eval_config = load_eval_config(evaluation_uri)
  overall = load_metrics(evaluation_uri).get(OVERALL, {})
  failed = set()
  for per_slice in tfma.load_validation_result(evaluation_uri).metric_validations_per_slice:
    if _slice_name(per_slice.slice_key) == OVERALL:
      failed.update(_metric_id(metric_types.MetricKey.from_proto(f.metric_key))
                    for f in per_slice.failures)
  _, baseline = model_names(eval_config)
  checks = []
  thresholds = tfma.metrics.metric_thresholds_from_metrics_specs(
      eval_config.metrics_specs, eval_config=eval_config)
  for key, slice_thresholds in thresholds.items():
    metric = _metric_id(key)
    if metric.model_name == baseline and baseline is not None:
      continue
    for slice_spec, threshold in slice_thresholds:
      if slice_spec is not None and (slice_spec.feature_keys or slice_spec.feature_values):
        continue
      checks.append(GateCheck(
          metric=metric,
          kind='change' if isinstance(threshold, tfma.GenericChangeThreshold) else 'value',
          bound=_bound(threshold), measured=overall.get(metric), passed=metric not in failed))
  return checks
