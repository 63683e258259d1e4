"""The Evaluator's EvalConfig: metrics on the raw test split and the gate that blesses a model.

The gate judges the overall slice (the `source` slices are reported, not gated: they can be
small or hold a single class):
  - accuracy >= min_accuracy;
  - COVID recall (argmax, components.evaluation.argmax_metrics) >= min_covid_recall;
  - accuracy >= the blessed baseline's accuracy - max_accuracy_drop (TFX ignores this change
    threshold on the first run, when no blessed baseline exists).
"""
from typing import Optional, Sequence

import tensorflow_model_analysis as tfma

from components import features
from components import labels
from pipeline import configs

SIGNATURE_NAME = 'serving_examples'   # serialized raw tf.Examples -> probabilities
PREDICTION_KEY = 'probabilities'
ARGMAX_METRICS_MODULE = 'components.evaluation.argmax_metrics'
COVID_CLASS_ID = labels.CLASS_NAMES.index('COVID')

# Metric names as they appear in the evaluation (MetricKey.name).
ACCURACY = 'sparse_categorical_accuracy'
ARGMAX_PRECISION, ARGMAX_RECALL, ARGMAX_F1 = 'argmax_precision', 'argmax_recall', 'argmax_f1'
AUC = 'auc'
CONFUSION_MATRIX_PLOT = 'multi_class_confusion_matrix_plot'


def _overall_slice_threshold(threshold: tfma.MetricThreshold) -> tfma.PerSliceMetricThreshold:
  return tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)


def _argmax_metric(class_name: str, threshold: Optional[tfma.MetricThreshold] = None):
  return tfma.MetricConfig(
      class_name=class_name, module=ARGMAX_METRICS_MODULE,
      per_slice_thresholds=[_overall_slice_threshold(threshold)] if threshold else [])


def _class_ids(ids: Sequence[int]) -> tfma.BinarizationOptions:
  return tfma.BinarizationOptions(class_ids={'values': list(ids)})


def make_eval_config(min_accuracy: float = configs.MIN_ACCURACY,
                     min_covid_recall: float = configs.MIN_COVID_RECALL,
                     max_accuracy_drop: float = configs.MAX_ACCURACY_DROP,
                     slice_features: Sequence[str] = (features.SOURCE_KEY,)) -> tfma.EvalConfig:
  """EvalConfig for TFX's Evaluator on the raw examples (`serving_examples` signature).

  Args:
    min_accuracy: lowest accepted accuracy on the test split.
    min_covid_recall: lowest accepted COVID recall (sensitivity) at argmax.
    max_accuracy_drop: how far the accuracy may fall below the blessed baseline's (0: no drop).
    slice_features: raw features to report metrics by, besides the overall slice.
  """
  for name, value in (('min_accuracy', min_accuracy), ('min_covid_recall', min_covid_recall),
                      ('max_accuracy_drop', max_accuracy_drop)):
    if not 0.0 <= value <= 1.0:
      raise ValueError(f'{name} must be within [0, 1], got {value}')
  all_classes = range(labels.NUM_CLASSES)
  accuracy_gate = tfma.MetricThreshold(
      value_threshold=tfma.GenericValueThreshold(lower_bound={'value': min_accuracy}),
      change_threshold=tfma.GenericChangeThreshold(
          direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={'value': -max_accuracy_drop}))
  covid_recall_gate = tfma.MetricThreshold(
      value_threshold=tfma.GenericValueThreshold(lower_bound={'value': min_covid_recall}))
  return tfma.EvalConfig(
      model_specs=[tfma.ModelSpec(signature_name=SIGNATURE_NAME, label_key=features.LABEL_KEY,
                                  prediction_key=PREDICTION_KEY)],
      slicing_specs=[tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=[key])
                                             for key in slice_features],
      metrics_specs=[
          tfma.MetricsSpec(metrics=[
              tfma.MetricConfig(class_name='ExampleCount'),
              tfma.MetricConfig(class_name='SparseCategoricalAccuracy',
                                per_slice_thresholds=[_overall_slice_threshold(accuracy_gate)]),
              tfma.MetricConfig(class_name='MultiClassConfusionMatrixPlot'),
          ]),
          # Per class at argmax, plus one-vs-rest AUC per class and their macro averages.
          tfma.MetricsSpec(
              binarize=_class_ids(all_classes),
              aggregate=tfma.AggregationOptions(
                  macro_average=True, class_weights={i: 1.0 for i in all_classes}),
              metrics=[_argmax_metric('ArgmaxPrecision'), _argmax_metric('ArgmaxRecall'),
                       _argmax_metric('ArgmaxF1'), tfma.MetricConfig(class_name='AUC')]),
          # The COVID recall gate (same metric key as above: TFMA computes it once).
          tfma.MetricsSpec(binarize=_class_ids([COVID_CLASS_ID]),
                           metrics=[_argmax_metric('ArgmaxRecall', covid_recall_gate)]),
      ])
