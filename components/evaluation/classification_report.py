"""Per-class precision / recall / F1 from an argmax confusion matrix (scikit-learn's meaning).

One computation shared by the Evaluator's gate metrics (argmax_metrics.py) and the run report, so
the figures the gate judges are the figures the report prints. No TensorFlow import.
"""
import dataclasses
from typing import Iterable, Sequence, Tuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class ClassScores:
  precision: float
  recall: float
  f1: float
  support: float


@dataclasses.dataclass(frozen=True)
class ClassificationReport:
  """scikit-learn's classification_report (zero_division=0) for one confusion matrix."""
  class_names: Tuple[str, ...]
  per_class: Tuple[ClassScores, ...]
  accuracy: float
  macro_avg: ClassScores
  weighted_avg: ClassScores


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
  """numerator / denominator, 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
  return np.divide(numerator, denominator, out=np.zeros_like(numerator, dtype=np.float64),
                   where=denominator != 0)


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
          'example needs a prediction (argmax, threshold 0).')
    matrix[actual, predicted] += count
  return matrix


def classification_report(matrix: np.ndarray, class_names: Sequence[str]) -> ClassificationReport:
  """Precision, recall, F1 and support per class, accuracy, macro and weighted averages."""
  matrix = np.asarray(matrix, dtype=np.float64)
  if matrix.shape != (len(class_names), len(class_names)):
    raise ValueError(f'Confusion matrix of shape {matrix.shape} does not match '
                     f'{len(class_names)} class names')
  true_positives = np.diag(matrix)
  support = matrix.sum(axis=1)
  precision = _ratio(true_positives, matrix.sum(axis=0))
  recall = _ratio(true_positives, support)
  f1 = _ratio(2 * precision * recall, precision + recall)
  total = support.sum()
  weights = _ratio(support, np.full_like(support, total))
  return ClassificationReport(
      class_names=tuple(class_names),
      per_class=tuple(ClassScores(*map(float, scores))
                      for scores in zip(precision, recall, f1, support)),
      accuracy=float(true_positives.sum() / total) if total else 0.0,
      macro_avg=ClassScores(float(precision.mean()), float(recall.mean()), float(f1.mean()),
                            float(total)),
      weighted_avg=ClassScores(float(weights @ precision), float(weights @ recall),
                               float(weights @ f1), float(total)))
