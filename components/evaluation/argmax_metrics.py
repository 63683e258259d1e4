"""TFMA metrics: per-class precision, recall and F1 at argmax, as in the notebook's report.

TFMA's own Precision/Recall binarize each class score at 0.5 (or count top-k hits), which is not
what a multi-class classification report means. These metrics derive from TFMA's multi-class
confusion matrix at threshold 0, where each example counts for its argmax class, and compute the
figures with components.evaluation.classification_report, the function the run report uses.

Use them with binarization, which gives one key per class (SubKey(class_id=i)):

  tfma.MetricsSpec(binarize=tfma.BinarizationOptions(class_ids={'values': [0, 1, 2]}),
                   metrics=[tfma.MetricConfig(class_name='ArgmaxRecall',
                                              module='components.evaluation.argmax_metrics')])
"""
from typing import Any, Callable, Dict, Optional

from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.metrics import metric_util
from tensorflow_model_analysis.metrics import multi_class_confusion_matrix_metrics as mccm

from components import labels
from components.evaluation import classification_report

ARGMAX_THRESHOLD = 0.0  # a TFMA matrix at threshold 0 counts every example for its argmax class


def report_from_matrices(matrices: mccm.Matrices) -> classification_report.ClassificationReport:
  """The classification report of TFMA's multi-class confusion matrices at threshold 0."""
  entries = ((k.actual_class_id, k.predicted_class_id, count)
             for k, count in matrices[ARGMAX_THRESHOLD].items())
  return classification_report.classification_report(
      classification_report.confusion_matrix(entries, labels.NUM_CLASSES), labels.CLASS_NAMES)


def _computations_fn(statistic: str) -> Callable[..., metric_types.MetricComputations]:
  """create_computations_fn of a metric reading `statistic` of one class from the report."""

  def computations(name: str,
                   eval_config=None,
                   model_name: str = '',
                   output_name: str = '',
                   sub_key: Optional[metric_types.SubKey] = None,
                   example_weighted: bool = False) -> metric_types.MetricComputations:
    if sub_key is None or sub_key.class_id is None:
      raise ValueError(
          f'{name} is per class: configure it in a MetricsSpec with '
          "binarize=tfma.BinarizationOptions(class_ids={'values': [...]})")
    class_id = sub_key.class_id
    if not 0 <= class_id < labels.NUM_CLASSES:
      raise ValueError(f'{name}: class_id {class_id} is not one of {labels.CLASS_NAMES}')
    key = metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name,
                                 sub_key=sub_key, example_weighted=example_weighted)
    matrices_computations = mccm.multi_class_confusion_matrices(
        thresholds=[ARGMAX_THRESHOLD], eval_config=eval_config, model_name=model_name,
        output_name=output_name, example_weighted=example_weighted)
    matrices_key = matrices_computations[-1].keys[-1]

    def result(metrics: Dict[metric_types.MetricKey, Any]) -> Dict[metric_types.MetricKey, float]:
      scores = report_from_matrices(metrics[matrices_key]).per_class[class_id]
      return {key: getattr(scores, statistic)}

    return matrices_computations + [
        metric_types.DerivedMetricComputation(keys=[key], result=result)]

  return computations


class ArgmaxPrecision(metric_types.Metric):
  """Precision of one class among the examples whose argmax is that class."""

  def __init__(self, name: str = 'argmax_precision'):
    super().__init__(metric_util.merge_per_key_computations(_computations_fn('precision')),
                     name=name)


class ArgmaxRecall(metric_types.Metric):
  """Recall (sensitivity) of one class: its examples whose argmax is that class."""

  def __init__(self, name: str = 'argmax_recall'):
    super().__init__(metric_util.merge_per_key_computations(_computations_fn('recall')),
                     name=name)


class ArgmaxF1(metric_types.Metric):
  """F1 of one class from its argmax precision and recall."""

  def __init__(self, name: str = 'argmax_f1'):
    super().__init__(metric_util.merge_per_key_computations(_computations_fn('f1')), name=name)
