"""The evaluated model's COVID operating point and the test split's figures at its threshold.

The Trainer stores the threshold with the model (components.operating_point); the Evaluator counts
the test split's COVID true and false positives and negatives at every threshold of its grid
(eval_config.THRESHOLD_COUNTS). Read by the run report and the model card.
"""

import dataclasses
from typing import Optional

from tfx.utils import path_utils

from components import labels
from components import operating_point
from components.evaluation import classification_report
from components.evaluation import results


@dataclasses.dataclass(frozen=True)
class OperatingPointFigures:
  """The evaluated model's COVID operating point and the test split's figures at it."""

  point: operating_point.OperatingPoint  # as stored by the Trainer, with its eval counts
  sensitivity: classification_report.Proportion  # on the test split
  specificity: classification_report.Proportion
  counts: results.ThresholdCounts  # COVID counts at every threshold: the curves
  index: int  # the operating threshold's position in `counts`


def load_operating_point(
  model_uri: str, evaluation_uri: str, candidate: str
) -> Optional[OperatingPointFigures]:
  """The operating point stored with the model and the test counts at its threshold; None when
  the model has none or the evaluation has no COVID counts (both predate operating points)."""
  try:
    point = operating_point.read(path_utils.serving_model_dir(model_uri))
  except FileNotFoundError:
    return None
  counts = results.load_threshold_counts(evaluation_uri, labels.COVID, model_name=candidate)
  if counts is None:
    return None
  i = counts.index(point.threshold)
  tp, fn = counts.true_positives[i], counts.false_negatives[i]
  tn, fp = counts.true_negatives[i], counts.false_positives[i]
  return OperatingPointFigures(
    point=point,
    sensitivity=classification_report.Proportion(tp, tp + fn),
    specificity=classification_report.Proportion(tn, tn + fp),
    counts=counts,
    index=i,
  )
