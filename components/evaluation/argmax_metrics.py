"""TFMA metrics from the argmax confusion matrix: the classification report, with intervals.

TFMA's own Precision/Recall binarize each class score at 0.5 (or count top-k hits), which is not
what a multi-class classification report means. These metrics derive from TFMA's multi-class
confusion matrix at threshold 0, where each example counts for its argmax class, and read their
figure from components.evaluation.classification_report, the function the run report uses.

Every proportion (accuracy; per class precision, recall, specificity, NPV) has two companion
metrics, `<name>_lower95` and `<name>_upper95`: the ends of its 95% Wilson score interval. They
are metrics of their own so that TFMA's standard thresholds can judge a bound (TFMA's confidence
intervals are not what its thresholds compare).

One metric class, ArgmaxFigure, serves every figure: the MetricConfig's JSON `config` names the
figure and the interval end. Per-class figures need binarization, which gives one key per class
(SubKey(class_id=i)):

  tfma.MetricsSpec(binarize=tfma.BinarizationOptions(class_ids={'values': [0, 1, 2]}),
                   metrics=[tfma.MetricConfig(class_name='ArgmaxFigure',
                                              module='components.evaluation.argmax_metrics',
                                              config='{"figure": "recall", "end": "_lower95"}')])

Accuracy, its bounds and the accuracy above chance take no class (a MetricsSpec without
binarize).
"""

from typing import Any, Dict, Optional

from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.metrics import metric_util
from tensorflow_model_analysis.metrics import multi_class_confusion_matrix_metrics as mccm

from components import labels
from components.evaluation import classification_report

ARGMAX_THRESHOLD = 0.0  # a TFMA matrix at threshold 0 counts every example for its argmax class
LOWER, UPPER = '_lower95', '_upper95'  # suffixes of the interval metrics' names
# Figures of the report: accuracy over all classes, the others per class.
ACCURACY = 'accuracy'
# Accuracy minus that of always answering the most frequent class: the masking audit's figure.
ACCURACY_ABOVE_CHANCE = 'accuracy_above_chance'
OVERALL_FIGURES = (ACCURACY, ACCURACY_ABOVE_CHANCE)
PER_CLASS_FIGURES = ('precision', 'recall', 'specificity', 'npv', 'f1', 'support')
PROPORTIONS = (ACCURACY, 'precision', 'recall', 'specificity', 'npv')  # the ones with intervals


def report_from_matrices(matrices: mccm.Matrices) -> classification_report.ClassificationReport:
  """The classification report of TFMA's multi-class confusion matrices at threshold 0."""
  entries = (
    (k.actual_class_id, k.predicted_class_id, count)
    for k, count in matrices[ARGMAX_THRESHOLD].items()
  )
  return classification_report.classification_report(
    classification_report.confusion_matrix(entries, labels.NUM_CLASSES), labels.CLASS_NAMES
  )


def _read(
  report: classification_report.ClassificationReport, class_id: Optional[int], figure: str, end: str
) -> float:
  """`figure` (OVERALL_FIGURES or a ClassFigures field) of the report; `end` '', LOWER or UPPER."""
  if figure == ACCURACY_ABOVE_CHANCE:
    return report.accuracy.value - report.chance
  value = report.accuracy if class_id is None else getattr(report.per_class[class_id], figure)
  if isinstance(value, classification_report.Proportion):
    return {'': value.value, LOWER: value.ci.lower, UPPER: value.ci.upper}[end]
  return float(value)


def metric_name(figure: str, end: str = '') -> str:
  """The name of a figure's metric (MetricKey.name), e.g. 'argmax_recall_lower95'."""
  return f'argmax_{figure}{end}'


def _computations(
  name: str,
  figure: str,
  end: str,
  eval_config=None,
  model_name: str = '',
  output_name: str = '',
  sub_key: Optional[metric_types.SubKey] = None,
  example_weighted: bool = False,
) -> metric_types.MetricComputations:
  """TFMA's argmax confusion matrix, then `figure` (and interval `end`) of one key read from it."""
  class_id = sub_key.class_id if sub_key else None
  per_class = figure not in OVERALL_FIGURES
  if per_class and class_id is None:
    raise ValueError(
      f'{name} is per class: configure it in a MetricsSpec with '
      "binarize=tfma.BinarizationOptions(class_ids={'values': [...]})"
    )
  if not per_class and sub_key is not None:
    raise ValueError(f'{name} is over all classes: configure it in a MetricsSpec without binarize')
  if per_class and not 0 <= class_id < labels.NUM_CLASSES:
    raise ValueError(f'{name}: class_id {class_id} is not one of {labels.CLASS_NAMES}')
  key = metric_types.MetricKey(
    name=name,
    model_name=model_name,
    output_name=output_name,
    sub_key=sub_key,
    example_weighted=example_weighted,
  )
  matrices_computations = mccm.multi_class_confusion_matrices(
    thresholds=[ARGMAX_THRESHOLD],
    eval_config=eval_config,
    model_name=model_name,
    output_name=output_name,
    example_weighted=example_weighted,
  )
  matrices_key = matrices_computations[-1].keys[-1]

  def result(metrics: Dict[metric_types.MetricKey, Any]) -> Dict[metric_types.MetricKey, float]:
    return {key: _read(report_from_matrices(metrics[matrices_key]), class_id, figure, end)}

  return matrices_computations + [metric_types.DerivedMetricComputation(keys=[key], result=result)]


class ArgmaxFigure(metric_types.Metric):
  """One figure of the argmax classification report, or one end of its 95% Wilson interval.

  TFMA builds it from a MetricConfig's JSON `config`: `figure` is one of OVERALL_FIGURES (over all
  classes) or of PER_CLASS_FIGURES; `end` is '' (the figure), LOWER or UPPER (proportions only). Its
  name is metric_name(figure, end) unless `name` is given.
  """

  def __init__(self, figure: str = ACCURACY, end: str = '', name: str = ''):
    if figure not in OVERALL_FIGURES + PER_CLASS_FIGURES:
      raise ValueError(
        f'figure must be one of {OVERALL_FIGURES + PER_CLASS_FIGURES}, got {figure!r}'
      )
    if end not in ('', LOWER, UPPER) or (end and figure not in PROPORTIONS):
      raise ValueError(f'{figure!r} has no interval end {end!r}')
    super().__init__(
      metric_util.merge_per_key_computations(_computations),
      name=name or metric_name(figure, end),
      figure=figure,
      end=end,
    )
