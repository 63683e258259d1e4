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
  """A metric of the evaluation: its name, class (binarized) or macro average, model, diff, and
  the model output it scores ('': the served probabilities; else an audit output)."""

  name: str
  class_id: Optional[int] = None
  macro: bool = False
  model_name: str = ''
  is_diff: bool = False
  output_name: str = ''


def _metric_id(key: metric_types.MetricKey) -> MetricId:
  return MetricId(
    name=key.name,
    class_id=key.sub_key.class_id if key.sub_key else None,
    macro=bool(key.aggregation_type and key.aggregation_type.macro_average),
    model_name=key.model_name,
    is_diff=key.is_diff,
    output_name=key.output_name,
  )


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
          item.value.double_value.value
        )
  return result


class ThresholdCounts(NamedTuple):
  """One class's binary confusion counts at each threshold (`score > threshold` is positive)."""

  thresholds: np.ndarray
  true_positives: np.ndarray
  false_positives: np.ndarray
  true_negatives: np.ndarray
  false_negatives: np.ndarray

  def index(self, threshold: float) -> int:
    """The position of `threshold` in `thresholds` (written rounded to 6 decimals by TFMA)."""
    found = np.flatnonzero(np.isclose(self.thresholds, threshold, rtol=0, atol=5e-7))
    if found.size != 1:
      raise ValueError(f'The evaluation has no counts at threshold {threshold}')
    return int(found[0])


def load_threshold_counts(
  evaluation_uri: str, class_id: int, model_name: str = '', slice_name: str = OVERALL
) -> Optional[ThresholdCounts]:
  """The counts of eval_config.THRESHOLD_COUNTS for one class, model and slice (None when the
  evaluation has none: it predates them)."""
  for metrics_for_slice in tfma.load_metrics(evaluation_uri):
    if _slice_name(metrics_for_slice.slice_key) != slice_name:
      continue
    for item in metrics_for_slice.metric_keys_and_values:
      metric = _metric_id(metric_types.MetricKey.from_proto(item.key))
      if metric == MetricId(eval_config_lib.THRESHOLD_COUNTS, class_id, model_name=model_name):
        matrices = item.value.confusion_matrix_at_thresholds.matrices
        return ThresholdCounts(
          *(
            np.array([getattr(m, field) for m in matrices], dtype=np.float64)
            for field in (
              'threshold',
              'true_positives',
              'false_positives',
              'true_negatives',
              'false_negatives',
            )
          )
        )
  return None


def load_confusion_matrix(
  evaluation_uri: str, model_name: str = '', slice_name: str = OVERALL
) -> np.ndarray:
  """Argmax confusion matrix (rows: true class, columns: predicted) of one model and slice."""
  for plots_for_slice in tfma.load_plots(evaluation_uri):
    if _slice_name(plots_for_slice.slice_key) != slice_name:
      continue
    for item in plots_for_slice.plot_keys_and_values:
      if (
        item.key.name == eval_config_lib.CONFUSION_MATRIX_PLOT and item.key.model_name == model_name
      ):
        for matrix in item.value.multi_class_confusion_matrix_at_thresholds.matrices:
          if matrix.threshold == argmax_metrics.ARGMAX_THRESHOLD:
            return classification_report.confusion_matrix(
              (
                (e.actual_class_id, e.predicted_class_id, e.num_weighted_examples)
                for e in matrix.entries
              ),
              labels.NUM_CLASSES,
            )
  raise ValueError(
    f'No confusion matrix for model {model_name!r}, slice {slice_name!r} in {evaluation_uri}'
  )


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
  """One threshold of the gate, what the candidate measured and the figure behind it."""

  metric: MetricId  # what the threshold judges, e.g. argmax_recall_lower95 of COVID
  kind: str  # 'value' (absolute bound) or 'change' (vs the baseline)
  bound: str  # e.g. '>= 0.8'
  threshold: float  # the bound's value (for 'change': the allowed change)
  measured: Optional[float]  # the judged metric's value
  passed: bool
  figure: MetricId  # the figure judged: `metric` itself, or the point of an interval end
  value: Optional[float]  # the figure's value (for 'change': candidate minus baseline)
  ci: Optional[classification_report.Interval]  # the figure's 95% interval, when it has one
  images: Optional[float]  # the images behind the figure's interval (accuracy, recall)

  @property
  def on_lower_bound(self) -> bool:
    return self.metric.name.endswith(eval_config_lib.LOWER)

  @property
  def is_maximum(self) -> bool:
    """The threshold is an upper bound (e.g. the ECE's), not a minimum."""
    return self.bound.startswith('<=')


def _bound(threshold) -> Tuple[str, float]:
  """The threshold as text, e.g. '>= 0.8', and its value."""
  if isinstance(threshold, tfma.GenericValueThreshold):
    parts, values = [], []
    if threshold.HasField('lower_bound'):
      parts.append(f'>= {threshold.lower_bound.value:g}')
      values.append(threshold.lower_bound.value)
    if threshold.HasField('upper_bound'):
      parts.append(f'<= {threshold.upper_bound.value:g}')
      values.append(threshold.upper_bound.value)
    return ' and '.join(parts), values[0]
  higher = threshold.direction == tfma.MetricDirection.HIGHER_IS_BETTER
  parts, values = [], []
  if threshold.HasField('absolute'):
    parts.append(f'{">=" if higher else "<="} {threshold.absolute.value + 0.0:+g} (absolute)')
    values.append(threshold.absolute.value + 0.0)
  if threshold.HasField('relative'):
    parts.append(f'{">=" if higher else "<="} {threshold.relative.value + 0.0:+g} (relative)')
    values.append(threshold.relative.value + 0.0)
  return ' and '.join(parts), values[0]


def _images_behind(figure: MetricId) -> Optional[MetricId]:
  """The metric counting the images behind a gated figure (None: not recorded)."""
  if figure.name in (
    eval_config_lib.ACCURACY,
    eval_config_lib.TOP_LABEL_ECE,
    eval_config_lib.ACCURACY_ABOVE_CHANCE,
  ):
    return MetricId(eval_config_lib.EXAMPLE_COUNT, model_name=figure.model_name)
  if figure.name == eval_config_lib.ARGMAX_RECALL:
    return figure._replace(name=eval_config_lib.ARGMAX_SUPPORT)
  return None


def interval(
  values: Dict[MetricId, float], figure: MetricId
) -> Optional[classification_report.Interval]:
  """The 95% interval of a proportion from its interval-end metrics (None: not recorded)."""
  ends = [
    values.get(figure._replace(name=figure.name + end, is_diff=False))
    for end in (eval_config_lib.LOWER, eval_config_lib.UPPER)
  ]
  return None if None in ends else classification_report.Interval(*ends)


def _check(metric: MetricId, threshold, overall: Dict[MetricId, float], passed: bool) -> GateCheck:
  kind = 'change' if isinstance(threshold, tfma.GenericChangeThreshold) else 'value'
  bound, value = _bound(threshold)
  figure = metric._replace(name=metric.name.removesuffix(eval_config_lib.LOWER))
  ci = interval(overall, figure) if kind == 'value' else None
  images = _images_behind(figure)
  return GateCheck(
    metric=metric,
    kind=kind,
    bound=bound,
    threshold=value,
    measured=overall.get(metric),
    passed=passed,
    figure=figure,
    value=overall.get(figure),
    ci=ci,
    images=overall.get(images) if images and kind == 'value' else None,
  )


def load_gate(evaluation_uri: str) -> List[GateCheck]:
  """Every threshold the Evaluator judged on the overall slice, its value and its verdict."""
  eval_config = load_eval_config(evaluation_uri)
  overall = load_metrics(evaluation_uri).get(OVERALL, {})
  failed = set()
  for per_slice in tfma.load_validation_result(evaluation_uri).metric_validations_per_slice:
    if _slice_name(per_slice.slice_key) == OVERALL:
      failed.update(
        _metric_id(metric_types.MetricKey.from_proto(f.metric_key)) for f in per_slice.failures
      )
  _, baseline = model_names(eval_config)
  checks = []
  thresholds = tfma.metrics.metric_thresholds_from_metrics_specs(
    eval_config.metrics_specs, eval_config=eval_config
  )
  for key, slice_thresholds in thresholds.items():
    metric = _metric_id(key)
    if metric.model_name == baseline and baseline is not None:
      continue
    for slice_spec, threshold in slice_thresholds:
      if slice_spec is not None and (slice_spec.feature_keys or slice_spec.feature_values):
        continue
      checks.append(_check(metric, threshold, overall, passed=metric not in failed))
  return checks


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """What the Evaluator wrote, read back: model names, metrics, matrix, report, gate."""

  candidate: str
  baseline: Optional[str]
  metrics: Dict[str, Dict[MetricId, float]]  # per slice (OVERALL, 'source:...')
  matrix: np.ndarray  # the candidate's argmax confusion matrix, overall
  report: classification_report.ClassificationReport  # of `matrix`
  checks: List[GateCheck]


def load_evaluation(evaluation_uri: str) -> Evaluation:
  """The candidate's figures and the gate's checks from an Evaluator output folder."""
  candidate, baseline = model_names(load_eval_config(evaluation_uri))
  matrix = load_confusion_matrix(evaluation_uri, model_name=candidate)
  return Evaluation(
    candidate=candidate,
    baseline=baseline,
    metrics=load_metrics(evaluation_uri),
    matrix=matrix,
    report=classification_report.classification_report(matrix, labels.CLASS_NAMES),
    checks=load_gate(evaluation_uri),
  )
