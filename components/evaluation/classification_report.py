"""The argmax classification report of a confusion matrix, every proportion with its interval.

Per class (one class against the rest): precision (PPV), recall (sensitivity), specificity, NPV,
each a Proportion with its 95% Wilson score interval; F1 and support; overall accuracy with its
interval; macro and weighted averages as in scikit-learn's classification_report
(zero_division=0). One computation shared by the Evaluator's metrics (argmax_metrics.py) and the
run report, so the figures the gate judges are the figures the report prints. No TensorFlow.
"""

import dataclasses
import functools
from typing import Iterable, NamedTuple, Sequence, Tuple

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


class Interval(NamedTuple):
  lower: float
  upper: float


def wilson_interval(successes: float, trials: float, confidence: float = CONFIDENCE) -> Interval:
  """Wilson score interval of successes / trials (scipy's binomtest); [0, 1] with no trials.

  Counts must be whole numbers: the Evaluator counts unweighted examples.
  """
  if trials == 0:
    return Interval(0.0, 1.0)  # no evidence: every rate is possible
  k, n = int(round(successes)), int(round(trials))
  if (k, n) != (successes, trials):
    raise ValueError(
      f'A Wilson interval needs whole counts, got {successes} of {trials} '
      '(weighted examples are not supported)'
    )
  ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method='wilson')
  return Interval(float(ci.low), float(ci.high))


@dataclasses.dataclass(frozen=True)
class Proportion:
  """successes of trials: value (0 with no trials, scikit-learn's zero_division=0) and 95% CI."""

  successes: float
  trials: float

  @property
  def value(self) -> float:
    return self.successes / self.trials if self.trials else 0.0

  @functools.cached_property
  def ci(self) -> Interval:  # computed on demand: a TFMA metric reads one interval of many
    return wilson_interval(self.successes, self.trials)


@dataclasses.dataclass(frozen=True)
class ClassFigures:
  """One class against the rest, at argmax."""

  precision: Proportion  # true positives of the examples predicted as the class (PPV)
  recall: Proportion  # true positives of the class's examples (sensitivity)
  specificity: Proportion  # true negatives of the other classes' examples
  npv: Proportion  # true negatives of the examples predicted as another class
  f1: float
  support: float


@dataclasses.dataclass(frozen=True)
class ClassScores:
  """An average over the classes, as scikit-learn's classification_report gives it."""

  precision: float
  recall: float
  f1: float
  support: float


@dataclasses.dataclass(frozen=True)
class ClassificationReport:
  class_names: Tuple[str, ...]
  per_class: Tuple[ClassFigures, ...]
  accuracy: Proportion
  macro_avg: ClassScores
  weighted_avg: ClassScores

  @property
  def chance(self) -> float:
    """The accuracy of always answering the most frequent class (0 with no examples)."""
    supports = [c.support for c in self.per_class]
    return max(supports) / sum(supports) if sum(supports) else 0.0


def confusion_matrix(entries: Iterable[Tuple[int, int, float]], num_classes: int) -> np.ndarray:
  """[num_classes, num_classes] counts (rows: true class, columns: predicted) from
  (actual_class_id, predicted_class_id, count) entries, e.g. those of a TFMA
  MultiClassConfusionMatrix at threshold 0 (argmax)."""
  matrix = np.zeros((num_classes, num_classes), dtype=np.float64)
  for actual, predicted, count in entries:
    if not (0 <= actual < num_classes and 0 <= predicted < num_classes):
      raise ValueError(
        f'Confusion matrix entry (actual={actual}, predicted={predicted}) is outside the '
        f'{num_classes} classes: labels must be class ids 0..{num_classes - 1} and every '
        'example needs a prediction (argmax, threshold 0).'
      )
    matrix[actual, predicted] += count
  return matrix


def _class_figures(matrix: np.ndarray, i: int) -> ClassFigures:
  total = matrix.sum()
  true_positives, support, predicted = matrix[i, i], matrix[i].sum(), matrix[:, i].sum()
  true_negatives = total - support - predicted + true_positives
  precision = Proportion(true_positives, predicted)
  recall = Proportion(true_positives, support)
  denominator = precision.value + recall.value
  return ClassFigures(
    precision=precision,
    recall=recall,
    specificity=Proportion(true_negatives, total - support),
    npv=Proportion(true_negatives, total - predicted),
    f1=2 * precision.value * recall.value / denominator if denominator else 0.0,
    support=float(support),
  )


def classification_report(matrix: np.ndarray, class_names: Sequence[str]) -> ClassificationReport:
  """Per-class figures with intervals, accuracy with its interval, macro and weighted averages."""
  matrix = np.asarray(matrix, dtype=np.float64)
  if matrix.shape != (len(class_names), len(class_names)):
    raise ValueError(
      f'Confusion matrix of shape {matrix.shape} does not match {len(class_names)} class names'
    )
  per_class = tuple(_class_figures(matrix, i) for i in range(len(class_names)))
  scores = np.array([[c.precision.value, c.recall.value, c.f1] for c in per_class])
  support = np.array([c.support for c in per_class])
  total = float(support.sum())
  weighted = support @ scores / total if total else np.zeros(3)
  return ClassificationReport(
    class_names=tuple(class_names),
    per_class=per_class,
    accuracy=Proportion(float(np.trace(matrix)), total),
    macro_avg=ClassScores(*map(float, scores.mean(axis=0)), total),
    weighted_avg=ClassScores(*map(float, weighted), total),
  )
