"""The COVID operating point: the threshold on P(COVID) chosen on the eval split.

An image is COVID positive when `P(COVID) > threshold`: the comparison of TFMA's binary
confusion matrices (tensorflow_model_analysis/contrib/aggregates/binary_confusion_matrices.py),
used alike by the serving signatures (`covid_positive`), `cxr predict` and the report. The
threshold is a value of GRID, the threshold grid of TFMA 0.47's ConfusionMatrixPlot (-1e-6, then
i / GRID_STEPS for i in 0..GRID_STEPS). The Evaluator counts the test split's COVID true and false
positives and negatives at every value of GRID (eval_config.py), so the report reads the test
figures at exactly the operating threshold. The Trainer stores the choice with the model, in
`assets.extra/operating_point.json`, so it travels with every pushed copy.
"""

import dataclasses
import json
import os
from typing import Any, Dict

import numpy as np
import tensorflow as tf

from components.evaluation import classification_report

GRID_STEPS = 1000
GRID = (-1e-6,) + tuple(i / GRID_STEPS for i in range(GRID_STEPS + 1))
FILE = os.path.join('assets.extra', 'operating_point.json')  # inside a serving model folder
COMPARISON = 'score > threshold'


def is_positive(scores: np.ndarray, threshold: float) -> np.ndarray:
  """`scores > threshold`, in float64 as TFMA compares a float32 prediction with a threshold."""
  return np.asarray(scores, dtype=np.float64) > threshold


@dataclasses.dataclass(frozen=True)
class OperatingPoint:
  """A threshold on one class's probability and what it gave on the split it was chosen on."""

  class_name: str
  threshold: float
  target_sensitivity: float
  true_positives: int
  false_negatives: int
  true_negatives: int
  false_positives: int

  @property
  def sensitivity(self) -> classification_report.Proportion:
    return classification_report.Proportion(
      self.true_positives, self.true_positives + self.false_negatives
    )

  @property
  def specificity(self) -> classification_report.Proportion:
    return classification_report.Proportion(
      self.true_negatives, self.true_negatives + self.false_positives
    )

  def to_json(self) -> Dict[str, Any]:
    """The JSON of FILE: the choice, its eval figures and counts."""
    return {
      'class': self.class_name,
      'threshold': self.threshold,
      'comparison': COMPARISON,
      'target_sensitivity': self.target_sensitivity,
      'eval_sensitivity': self.sensitivity.value,
      'eval_specificity': self.specificity.value,
      'eval_counts': {
        'true_positives': self.true_positives,
        'false_negatives': self.false_negatives,
        'true_negatives': self.true_negatives,
        'false_positives': self.false_positives,
      },
    }

  @classmethod
  def from_json(cls, data: Dict[str, Any]) -> 'OperatingPoint':
    return cls(
      class_name=data['class'],
      threshold=float(data['threshold']),
      target_sensitivity=float(data['target_sensitivity']),
      **{key: int(value) for key, value in data['eval_counts'].items()},
    )


def choose(
  scores: np.ndarray, is_class: np.ndarray, target_sensitivity: float, class_name: str = 'COVID'
) -> OperatingPoint:
  """The highest GRID value whose sensitivity (`score > threshold` among the class's images)
  reaches `target_sensitivity`.

  Args:
    scores: the class's probability for each image of the split, e.g. P(COVID).
    is_class: whether each image is of the class (its label).
    target_sensitivity: in (0, 1]; 1.0 asks for every image of the class above the threshold.
  Raises:
    ValueError: no image of the class, scores that are not finite, or a target outside (0, 1].
  """
  scores = np.asarray(scores, dtype=np.float64)
  is_class = np.asarray(is_class, dtype=bool)
  if scores.ndim != 1 or scores.shape != is_class.shape:
    raise ValueError(f'scores {scores.shape} and labels {is_class.shape} must be two 1-D arrays')
  if not 0.0 < target_sensitivity <= 1.0:
    raise ValueError(f'The target sensitivity must be in (0, 1], got {target_sensitivity}')
  if not is_class.any():
    raise ValueError(f'No {class_name} image in the split: cannot choose a {class_name} threshold')
  if not np.isfinite(scores).all():
    raise ValueError(f'{np.sum(~np.isfinite(scores))} score(s) are not finite (NaN or infinite)')
  class_scores = np.sort(scores[is_class])
  # Images of the class scored above each grid value, i.e. `score > threshold`.
  detected = class_scores.size - np.searchsorted(class_scores, GRID, side='right')
  reaching = np.flatnonzero(detected / class_scores.size >= target_sensitivity)
  if not reaching.size:  # only with scores below GRID[0], which probabilities never are
    raise ValueError(f'No threshold of the grid reaches sensitivity {target_sensitivity}')
  threshold = GRID[reaching[-1]]
  positive = is_positive(scores, threshold)
  return OperatingPoint(
    class_name=class_name,
    threshold=threshold,
    target_sensitivity=float(target_sensitivity),
    true_positives=int(np.sum(positive & is_class)),
    false_negatives=int(np.sum(~positive & is_class)),
    true_negatives=int(np.sum(~positive & ~is_class)),
    false_positives=int(np.sum(positive & ~is_class)),
  )


def write(point: OperatingPoint, serving_model_dir: str) -> str:
  """Writes FILE into a serving model folder (any tf.io.gfile path); returns its path."""
  path = os.path.join(serving_model_dir, FILE)
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.gfile.GFile(path, 'w') as f:
    json.dump(point.to_json(), f, indent=2, sort_keys=True)
  return path


def read(serving_model_dir: str) -> OperatingPoint:
  """The operating point stored in a serving model folder; FileNotFoundError when it has none."""
  path = os.path.join(serving_model_dir, FILE)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f'No operating point ({FILE}) in {serving_model_dir}')
  with tf.io.gfile.GFile(path) as f:
    return OperatingPoint.from_json(json.load(f))
