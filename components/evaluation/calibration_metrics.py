"""TFMA calibration metrics: top-label ECE (15 equal-width bins) and the multi-class Brier score.

TFMA 0.47 has neither: its calibration metrics and histogram are per class (binary), while the
top-label ECE bins each example's highest probability. One CombineFn accumulates, per slice,
components.calibration's bin statistics and the sum of the Brier squared errors; the metrics read
their figure from it with the same functions the Trainer's numpy figures use. Register them like
the argmax metrics, in a MetricsSpec without binarize:

  tfma.MetricConfig(class_name='CalibrationFigure',
                    module='components.evaluation.calibration_metrics',
                    config='{"figure": "top_label_ece"}')
"""

import dataclasses
from typing import Any, Dict, Iterable, Optional

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.metrics import metric_util

from components import calibration

TOP_LABEL_ECE = 'top_label_ece'
BRIER = 'brier'
FIGURES = (TOP_LABEL_ECE, BRIER)
_STATISTICS_NAME = '_top_label_calibration_statistics'  # private: TFMA does not write it


@dataclasses.dataclass
class Statistics:
  """Per confidence bin: examples, sum of top probabilities, correct argmaxes (weighted); and the
  weighted sum of the Brier squared errors."""

  counts: np.ndarray
  confidence_sums: np.ndarray
  correct_sums: np.ndarray
  squared_error_sum: float = 0.0

  @classmethod
  def empty(cls) -> 'Statistics':
    zeros = np.zeros(calibration.ECE_BINS)
    return cls(zeros, zeros.copy(), zeros.copy())

  def add(self, other: 'Statistics') -> None:
    self.counts += other.counts
    self.confidence_sums += other.confidence_sums
    self.correct_sums += other.correct_sums
    self.squared_error_sum += other.squared_error_sum

  def figure(self, name: str) -> float:
    if name == TOP_LABEL_ECE:
      return calibration.ece_from_bins(self.counts, self.confidence_sums, self.correct_sums)
    total = float(np.sum(self.counts))
    return self.squared_error_sum / total if total else float('nan')


class _StatisticsCombiner(beam.CombineFn):
  """Statistics of (sparse label, class probabilities, example weight) inputs."""

  def __init__(self, key: metric_types.MetricKey, eval_config, example_weighted: bool):
    self._key = key
    self._eval_config = eval_config
    self._example_weighted = example_weighted

  def create_accumulator(self) -> Statistics:
    return Statistics.empty()

  def add_input(
    self, accumulator: Statistics, element: metric_types.StandardMetricInputs
  ) -> Statistics:
    label, probabilities, weight = next(
      metric_util.to_label_prediction_example_weight(
        element,
        eval_config=self._eval_config,
        model_name=self._key.model_name,
        output_name=self._key.output_name,
        example_weighted=self._example_weighted,
        flatten=False,
        require_single_example_weight=True,
      )
    )
    probabilities = np.reshape(probabilities, (1, -1))
    labels = np.reshape(label, (1,)).astype(np.int64)
    weight = float(weight)
    counts, confidence_sums, correct_sums = calibration.bin_statistics(probabilities, labels)
    accumulator.add(
      Statistics(
        counts * weight,
        confidence_sums * weight,
        correct_sums * weight,
        float(calibration.squared_errors(probabilities, labels)[0]) * weight,
      )
    )
    return accumulator

  def merge_accumulators(self, accumulators: Iterable[Statistics]) -> Statistics:
    accumulators = iter(accumulators)
    result = next(accumulators)
    for accumulator in accumulators:
      result.add(accumulator)
    return result

  def extract_output(self, accumulator: Statistics) -> Dict[metric_types.MetricKey, Statistics]:
    return {self._key: accumulator}


def _computations(
  name: str,
  figure: str,
  eval_config=None,
  model_name: str = '',
  output_name: str = '',
  sub_key: Optional[metric_types.SubKey] = None,
  example_weighted: bool = False,
) -> metric_types.MetricComputations:
  """The shared statistics (computed once per model and output), then `figure` read from them."""
  if sub_key is not None:
    raise ValueError(f'{name} is over all classes: configure it in a MetricsSpec without binarize')
  statistics_key = metric_types.MetricKey(
    name=_STATISTICS_NAME,
    model_name=model_name,
    output_name=output_name,
    example_weighted=example_weighted,
  )
  key = metric_types.MetricKey(
    name=name, model_name=model_name, output_name=output_name, example_weighted=example_weighted
  )

  def result(metrics: Dict[metric_types.MetricKey, Any]) -> Dict[metric_types.MetricKey, float]:
    return {key: metrics[statistics_key].figure(figure)}

  return [
    metric_types.MetricComputation(
      keys=[statistics_key],
      preprocessors=None,
      combiner=_StatisticsCombiner(statistics_key, eval_config, example_weighted),
    ),
    metric_types.DerivedMetricComputation(keys=[key], result=result),
  ]


class CalibrationFigure(metric_types.Metric):
  """The top-label ECE or the multi-class Brier score of the predicted probabilities.

  TFMA builds it from a MetricConfig's JSON `config`: `figure` is one of FIGURES, which is also
  the metric's name unless `name` is given.
  """

  def __init__(self, figure: str = TOP_LABEL_ECE, name: str = ''):
    if figure not in FIGURES:
      raise ValueError(f'figure must be one of {FIGURES}, got {figure!r}')
    super().__init__(
      metric_util.merge_per_key_computations(_computations), name=name or figure, figure=figure
    )
