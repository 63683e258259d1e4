"""TFMA metrics from the argmax confusion matrix: the classification report, with intervals.

TFMA's own Precision/Recall binarize each class score at 0.5 (or count top-k hits), which is not
what a multi-class classification report means. These metrics derive from TFMA's multi-class
confusion matrix at threshold 0, where each example counts for its argmax class, and read their
figure from components.evaluation.classification_report, the function the run report uses.

Every proportion (accuracy; per class precision, recall, specificity, NPV) has two companion
metrics, `<name>_lower95` and `<name>_upper95`: the ends of its 95% Wilson score interval. They
are metrics of their own so that TFMA's standard thresholds can judge a bound (TFMA's confidence
intervals are not what its thresholds compare).

Per-class metrics need binarization, which gives one key per class (SubKey(class_id=i)):

  tfma.MetricsSpec(binarize=tfma.BinarizationOptions(class_ids={'values': [0, 1, 2]}),
                   metrics=[tfma.MetricConfig(class_name='ArgmaxRecall',
                                              module='components.evaluation.argmax_metrics')])

ArgmaxAccuracy and its bounds take no class (a MetricsSpec without binarize).
"""

from typing import Any, Callable, Dict, Optional

from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.metrics import metric_util
from tensorflow_model_analysis.metrics import multi_class_confusion_matrix_metrics as mccm

from components import labels
from components.evaluation import classification_report

ARGMAX_THRESHOLD = 0.0  # a TFMA matrix at threshold 0 counts every example for its argmax class
LOWER, UPPER = '_lower95', '_upper95'  # suffixes of the interval metrics' names


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
  """`figure` ('accuracy' or a ClassFigures field) of the report; `end` '', LOWER or UPPER."""
  value = report.accuracy if class_id is None else getattr(report.per_class[class_id], figure)
  if isinstance(value, classification_report.Proportion):
    return {'': value.value, LOWER: value.ci.lower, UPPER: value.ci.upper}[end]
  return float(value)


def _computations_fn(figure: str, end: str) -> Callable[..., metric_types.MetricComputations]:
  """create_computations_fn of a metric reading `figure` (and interval end) from the report."""
  per_class = figure != 'accuracy'

  def computations(
    name: str,
    eval_config=None,
    model_name: str = '',
    output_name: str = '',
    sub_key: Optional[metric_types.SubKey] = None,
    example_weighted: bool = False,
  ) -> metric_types.MetricComputations:
    class_id = sub_key.class_id if sub_key else None
    if per_class and class_id is None:
      raise ValueError(
        f'{name} is per class: configure it in a MetricsSpec with '
        "binarize=tfma.BinarizationOptions(class_ids={'values': [...]})"
      )
    if not per_class and sub_key is not None:
      raise ValueError(
        f'{name} is over all classes: configure it in a MetricsSpec without binarize'
      )
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

    return matrices_computations + [
      metric_types.DerivedMetricComputation(keys=[key], result=result)
    ]

  return computations


class _ArgmaxFigure(metric_types.Metric):
  """A figure of the argmax classification report; subclasses set FIGURE, END and NAME."""

  FIGURE, END, NAME = '', '', ''

  def __init__(self, name: str = ''):
    super().__init__(
      metric_util.merge_per_key_computations(_computations_fn(self.FIGURE, self.END)),
      name=name or self.NAME,
    )


class ArgmaxAccuracy(_ArgmaxFigure):
  """Share of the examples whose argmax is their label."""

  FIGURE, END, NAME = 'accuracy', '', 'argmax_accuracy'


class ArgmaxAccuracyLower95(_ArgmaxFigure):
  FIGURE, END, NAME = 'accuracy', LOWER, 'argmax_accuracy' + LOWER


class ArgmaxAccuracyUpper95(_ArgmaxFigure):
  FIGURE, END, NAME = 'accuracy', UPPER, 'argmax_accuracy' + UPPER


class ArgmaxPrecision(_ArgmaxFigure):
  """Precision (PPV) of one class among the examples whose argmax is that class."""

  FIGURE, END, NAME = 'precision', '', 'argmax_precision'


class ArgmaxPrecisionLower95(_ArgmaxFigure):
  FIGURE, END, NAME = 'precision', LOWER, 'argmax_precision' + LOWER


class ArgmaxPrecisionUpper95(_ArgmaxFigure):
  FIGURE, END, NAME = 'precision', UPPER, 'argmax_precision' + UPPER


class ArgmaxRecall(_ArgmaxFigure):
  """Recall (sensitivity) of one class: its examples whose argmax is that class."""

  FIGURE, END, NAME = 'recall', '', 'argmax_recall'


class ArgmaxRecallLower95(_ArgmaxFigure):
  FIGURE, END, NAME = 'recall', LOWER, 'argmax_recall' + LOWER


class ArgmaxRecallUpper95(_ArgmaxFigure):
  FIGURE, END, NAME = 'recall', UPPER, 'argmax_recall' + UPPER


class ArgmaxSpecificity(_ArgmaxFigure):
  """Specificity of one class: the other classes' examples whose argmax is not that class."""

  FIGURE, END, NAME = 'specificity', '', 'argmax_specificity'


class ArgmaxSpecificityLower95(_ArgmaxFigure):
  FIGURE, END, NAME = 'specificity', LOWER, 'argmax_specificity' + LOWER


class ArgmaxSpecificityUpper95(_ArgmaxFigure):
  FIGURE, END, NAME = 'specificity', UPPER, 'argmax_specificity' + UPPER


class ArgmaxNPV(_ArgmaxFigure):
  """Negative predictive value of one class: examples predicted as another class that are."""

  FIGURE, END, NAME = 'npv', '', 'argmax_npv'


class ArgmaxNPVLower95(_ArgmaxFigure):
  FIGURE, END, NAME = 'npv', LOWER, 'argmax_npv' + LOWER


class ArgmaxNPVUpper95(_ArgmaxFigure):
  FIGURE, END, NAME = 'npv', UPPER, 'argmax_npv' + UPPER


class ArgmaxF1(_ArgmaxFigure):
  """F1 of one class from its argmax precision and recall."""

  FIGURE, END, NAME = 'f1', '', 'argmax_f1'


class ArgmaxSupport(_ArgmaxFigure):
  """Number of examples of one class."""

  FIGURE, END, NAME = 'support', '', 'argmax_support'
