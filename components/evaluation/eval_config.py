"""The Evaluator's EvalConfig: metrics on the raw test split and the gate that blesses a model.

The gate (a components.evaluation.gate.Gate) judges the overall slice (the SLICE_FEATURES slices,
by source and by subgroup, are reported, not gated: they can be small or hold a single class):
  - accuracy >= min_accuracy;
  - COVID recall (argmax, components.evaluation.argmax_metrics) >= min_covid_recall;
  - accuracy >= the blessed baseline's accuracy - max_accuracy_drop (TFX ignores this change
    threshold on the first run, when no blessed baseline exists);
  - top-label ECE (components.evaluation.calibration_metrics) <= max_ece, when max_ece is set;
  - the masking audit (components/audit.py): with the lung fields hidden, accuracy above chance
    <= shortcut_margin, unless allow_shortcuts.
For COVID (binarized) it also counts true and false positives and negatives at every threshold
of components.operating_point.GRID (`P(COVID) > threshold`), from which the report reads the test
figures at the model's operating point and draws the ROC and precision-recall curves. TFMA's
ConfusionMatrixPlot has that grid but derives its counts from a histogram of 10,000 buckets, so a
prediction less than 1e-4 above a threshold counts as below it; ConfusionMatrixAtThresholds with
the grid spelled out compares each prediction exactly, in Python: about 7 ms per example, slice
and model on one core, small beside the model's own inference.
With gate_on='lower' the first two judge the lower end of the figure's 95% Wilson interval (the
`_lower95` metric), with 'point' the figure itself. The baseline comparison stays a point
comparison: both models are scored on the same images, so an interval of their difference needs
each image's pair of outcomes (McNemar), which TFMA's per-model metrics do not keep.
"""

import json
from typing import Sequence

import tensorflow_model_analysis as tfma

from components import audit
from components import features
from components import labels
from components import operating_point
from components import signatures
from components.evaluation import argmax_metrics
from components.evaluation import calibration_metrics
from components.evaluation.gate import Gate

# Serialized raw tf.Examples -> probabilities as served, and with the audit's regions hidden.
SIGNATURE_NAME = signatures.EVALUATION_SIGNATURE
PREDICTION_KEY = 'probabilities'
SLICE_FEATURES = (features.SOURCE_KEY,) + features.SUBGROUP_KEYS  # reported, not gated
ARGMAX_METRICS_MODULE = 'components.evaluation.argmax_metrics'
CALIBRATION_METRICS_MODULE = 'components.evaluation.calibration_metrics'

# Metric names as they appear in the evaluation (MetricKey.name); a proportion's interval ends
# are <name> + LOWER / UPPER.
EXAMPLE_COUNT = 'example_count'
ACCURACY = argmax_metrics.metric_name('accuracy')
ARGMAX_PRECISION = argmax_metrics.metric_name('precision')
ARGMAX_RECALL = argmax_metrics.metric_name('recall')
ARGMAX_F1 = argmax_metrics.metric_name('f1')
ARGMAX_SUPPORT = argmax_metrics.metric_name('support')
ACCURACY_ABOVE_CHANCE = argmax_metrics.metric_name(argmax_metrics.ACCURACY_ABOVE_CHANCE)
AUDIT_OUTPUTS = (audit.LUNGS_HIDDEN, audit.BORDERS_HIDDEN)  # output names of the audit's figures
AUC = 'auc'
TOP_LABEL_ECE = calibration_metrics.TOP_LABEL_ECE
BRIER = calibration_metrics.BRIER
CONFUSION_MATRIX_PLOT = 'multi_class_confusion_matrix_plot'
THRESHOLD_COUNTS = 'confusion_matrix_at_thresholds'  # COVID, at operating_point.GRID
LOWER, UPPER = argmax_metrics.LOWER, argmax_metrics.UPPER


def _overall_only(thresholds: Sequence[tfma.MetricThreshold]) -> list:
  return [
    tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=t)
    for t in thresholds
  ]


def _argmax_metric(
  figure: str, end: str = '', *thresholds: tfma.MetricThreshold
) -> tfma.MetricConfig:
  """An argmax_metrics.ArgmaxFigure, its thresholds judged on the overall slice only."""
  return tfma.MetricConfig(
    class_name='ArgmaxFigure',
    module=ARGMAX_METRICS_MODULE,
    config=json.dumps({'figure': figure, 'end': end}),
    per_slice_thresholds=_overall_only(thresholds),
  )


def _calibration_metric(figure: str, *thresholds: tfma.MetricThreshold) -> tfma.MetricConfig:
  """A calibration_metrics.CalibrationFigure, its thresholds judged on the overall slice only."""
  return tfma.MetricConfig(
    class_name='CalibrationFigure',
    module=CALIBRATION_METRICS_MODULE,
    config=json.dumps({'figure': figure}),
    per_slice_thresholds=_overall_only(thresholds),
  )


def _class_ids(ids: Sequence[int]) -> tfma.BinarizationOptions:
  return tfma.BinarizationOptions(class_ids={'values': list(ids)})


def _at_least(value: float) -> tfma.GenericValueThreshold:
  return tfma.GenericValueThreshold(lower_bound={'value': value})


def make_eval_config(
  gate: Gate = Gate(), slice_features: Sequence[str] = SLICE_FEATURES
) -> tfma.EvalConfig:
  """EvalConfig for TFX's Evaluator on the raw examples (SIGNATURE_NAME).

  Args:
    gate: the thresholds that bless a model (see the module docstring).
    slice_features: raw features to report metrics by, besides the overall slice.
  """
  all_classes = range(labels.NUM_CLASSES)
  lower = gate.gate_on == 'lower'
  judged = LOWER if lower else ''  # the interval end the two minimums judge ('': the figure)
  accuracy = tfma.MetricThreshold(
    change_threshold=tfma.GenericChangeThreshold(
      direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={'value': -gate.max_accuracy_drop}
    )
  )
  accuracy_bound = []
  if lower:
    accuracy_bound.append(tfma.MetricThreshold(value_threshold=_at_least(gate.min_accuracy)))
  else:
    accuracy.value_threshold.CopyFrom(_at_least(gate.min_accuracy))
  ece_bound = []
  if gate.max_ece is not None:
    ece_bound.append(
      tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(upper_bound={'value': gate.max_ece})
      )
    )
  shortcut_bound = []
  if not gate.allow_shortcuts:
    shortcut_bound.append(
      tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(upper_bound={'value': gate.shortcut_margin})
      )
    )
  return tfma.EvalConfig(
    model_specs=[
      tfma.ModelSpec(
        signature_name=SIGNATURE_NAME, label_key=features.LABEL_KEY, prediction_key=PREDICTION_KEY
      )
    ],
    slicing_specs=[tfma.SlicingSpec()]
    + [tfma.SlicingSpec(feature_keys=[key]) for key in slice_features],
    metrics_specs=[
      tfma.MetricsSpec(
        metrics=[
          tfma.MetricConfig(class_name='ExampleCount'),
          _argmax_metric('accuracy', '', accuracy),
          _argmax_metric('accuracy', LOWER, *accuracy_bound),
          _argmax_metric('accuracy', UPPER),
          _calibration_metric(TOP_LABEL_ECE, *ece_bound),
          _calibration_metric(BRIER),
          tfma.MetricConfig(class_name='MultiClassConfusionMatrixPlot'),
        ]
      ),
      # Per class at argmax, plus one-vs-rest AUC per class, and their macro averages.
      tfma.MetricsSpec(
        binarize=_class_ids(all_classes),
        aggregate=tfma.AggregationOptions(
          macro_average=True, class_weights={i: 1.0 for i in all_classes}
        ),
        metrics=[
          _argmax_metric('precision'),
          _argmax_metric('recall'),
          _argmax_metric('f1'),
          tfma.MetricConfig(class_name='AUC'),
        ],
      ),
      # Per class, not averaged: the other figures and every interval.
      tfma.MetricsSpec(
        binarize=_class_ids(all_classes),
        metrics=[
          _argmax_metric('specificity'),
          _argmax_metric('npv'),
          _argmax_metric('support'),
        ]
        + [
          _argmax_metric(figure, end)
          for figure in ('precision', 'recall', 'specificity', 'npv')
          for end in (LOWER, UPPER)
        ],
      ),
      # The COVID recall gate (same metric key as above: TFMA computes it once), and the COVID
      # counts at every threshold of the operating point's grid.
      tfma.MetricsSpec(
        binarize=_class_ids([labels.COVID]),
        metrics=[
          _argmax_metric(
            'recall',
            judged,
            tfma.MetricThreshold(value_threshold=_at_least(gate.min_covid_recall)),
          ),
          tfma.MetricConfig(
            class_name='ConfusionMatrixAtThresholds',
            config=json.dumps({'thresholds': list(operating_point.GRID)}),
          ),
        ],
      ),
      # The masking audit (components/audit.py): accuracy and COVID recall with the lung fields,
      # then the border band, hidden; with the lungs hidden, the accuracy above chance is gated.
      tfma.MetricsSpec(
        output_names=[audit.LUNGS_HIDDEN],
        metrics=[
          _argmax_metric('accuracy'),
          _argmax_metric(argmax_metrics.ACCURACY_ABOVE_CHANCE, '', *shortcut_bound),
        ],
      ),
      tfma.MetricsSpec(
        output_names=[audit.BORDERS_HIDDEN],
        metrics=[
          _argmax_metric('accuracy'),
          _argmax_metric(argmax_metrics.ACCURACY_ABOVE_CHANCE),
        ],
      ),
      tfma.MetricsSpec(
        output_names=list(AUDIT_OUTPUTS),
        binarize=_class_ids([labels.COVID]),
        metrics=[_argmax_metric('recall')],
      ),
    ],
  )
