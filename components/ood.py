"""Out-of-distribution abstention: a score fitted on the training split, a threshold on the eval
split, so the served model can say that an input is unlike anything it was trained on.

A classifier gives one of its classes to any input, a photo or a CT slice too. Three scores of the
exported (temperature-scaled) model are candidates, each higher for inputs further from the
training data:
- `mahalanobis` (Lee et al. 2018): the smallest Mahalanobis distance from the penultimate features
  (the output layer's input) to a class mean of the training split, under one covariance shared
  by the classes (pooled within-class), shrunk by Ledoit-Wolf (sklearn) because a split may hold
  too few images for a stable inverse of a 64 x 64 covariance;
- `energy` (Liu et al. 2020): -T logsumexp(logits / T) with T = 1 on the served logits;
- `max_softmax` (Hendrycks & Gimpel 2017): minus the highest class probability.
The Trainer keeps the one whose AUROC (sklearn) best separates the eval split from a reference set
of generated non-CXR images (components.ood_images); ties go to the earlier of METHODS. The
threshold is an eval score: the split-conformal quantile of the eval split's scores at
`eval_accept_rate` (threshold_for), so that a new image like the eval split is accepted with at
least that probability; an image is in distribution when its score <= threshold.

Limits: the threshold holds for images like the eval split; below 99 eval images (at 0.99) it is
their top score and the rate is not reached. A low score says the features look familiar, not
that the prediction is right; inputs close to CXRs (another projection, a child's film, another
scanner) may pass; the reference set only stands for gross mismatches.
"""

import dataclasses
import json
import math
import os
from typing import Any, Dict, Optional, Tuple

import numpy as np
from scipy import special
from sklearn import covariance
from sklearn import metrics
import tensorflow as tf

METHODS = ('mahalanobis', 'energy', 'max_softmax')
FILE = 'ood.json'  # in the Trainer's model_run artifact
ASSET = os.path.join('assets.extra', FILE)  # inside a serving model folder
COMPARISON = 'in_distribution = score <= threshold'


@dataclasses.dataclass(frozen=True)
class OodSettings:
  """How the abstention threshold is set."""

  # Share of new images like the eval split to accept as in distribution (threshold_for); with
  # fewer than eval_accept_rate / (1 - eval_accept_rate) eval images (99 at 0.99) the threshold
  # is their top score and the record carries a note.
  eval_accept_rate: float = 0.99


@dataclasses.dataclass(frozen=True, eq=False)
class Detector:
  """The chosen score and its threshold; class `means` [classes, features] and the shared
  `precision` [features, features] (inverse covariance) for `mahalanobis`, else None."""

  method: str
  means: Optional[np.ndarray] = None
  precision: Optional[np.ndarray] = None
  threshold: float = float('inf')  # until set on the eval split

  def scores(self, features: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """float64 [N] scores of penultimate `features` [N, D] and served `logits` [N, classes]."""
    if self.method == 'mahalanobis':
      return mahalanobis_scores(features, self.means, self.precision)
    return SCORES[self.method](logits)

  def graph_scores(self, features: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """`scores` in a TensorFlow graph (float64); the means and precision become graph constants,
    so the SavedModel holds them."""
    if self.method == 'mahalanobis':
      centred = tf.cast(features, tf.float64)[:, tf.newaxis, :] - tf.constant(self.means)
      squared = tf.einsum('ncd,de,nce->nc', centred, tf.constant(self.precision), centred)
      return tf.sqrt(tf.maximum(tf.reduce_min(squared, axis=-1), 0.0))
    logits = tf.cast(logits, tf.float64)
    if self.method == 'energy':
      return -tf.reduce_logsumexp(logits, axis=-1)
    return -tf.reduce_max(tf.nn.softmax(logits, axis=-1), axis=-1)


@dataclasses.dataclass(frozen=True)
class OodRecord:
  """What `fit` chose and measured: the JSON of FILE and ASSET."""

  method: str
  threshold: float
  target_eval_accept_rate: float
  eval_accept_rate: float  # measured: the share of eval images with score <= threshold
  auroc: Dict[str, float]  # per method: eval split (negative) vs reference images (positive)
  train_images: int
  eval_images: int
  reference_images: int
  note: Optional[str] = None  # why the threshold is weak evidence, if it is

  def to_json(self) -> Dict[str, Any]:
    return dict(dataclasses.asdict(self), comparison=COMPARISON)


def fit_class_gaussians(features: np.ndarray, labels: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """(class means [classes present, D], precision [D, D]) of the training `features`: the
  within-class deviations pooled into one Ledoit-Wolf covariance (Lee et al. 2018, shrunk)."""
  features, labels = np.asarray(features, np.float64), np.asarray(labels)
  classes = np.unique(labels)
  means = np.stack([features[labels == c].mean(axis=0) for c in classes])
  centred = features - means[np.searchsorted(classes, labels)]
  estimator = covariance.LedoitWolf(assume_centered=True).fit(centred)
  return means, estimator.precision_


def mahalanobis_scores(
  features: np.ndarray, means: np.ndarray, precision: np.ndarray
) -> np.ndarray:
  """Per row of `features`, the smallest Mahalanobis distance to a row of `means` (vectorised:
  scipy.spatial.distance.mahalanobis takes one pair at a time)."""
  centred = np.asarray(features, np.float64)[:, np.newaxis, :] - means
  squared = np.einsum('ncd,de,nce->nc', centred, precision, centred)
  return np.sqrt(np.maximum(squared.min(axis=-1), 0.0))


def energy_scores(logits: np.ndarray) -> np.ndarray:
  """-logsumexp(logits): the energy at T = 1, higher for unfamiliar inputs (Liu et al. 2020)."""
  return -special.logsumexp(np.asarray(logits, np.float64), axis=-1)


def max_softmax_scores(logits: np.ndarray) -> np.ndarray:
  """Minus the highest softmax probability (Hendrycks & Gimpel 2017)."""
  return -special.softmax(np.asarray(logits, np.float64), axis=-1).max(axis=-1)


SCORES = {'energy': energy_scores, 'max_softmax': max_softmax_scores}


def conformal_rank(eval_images: int, accept_rate: float) -> int:
  """ceil((N + 1) * accept_rate): the rank (1-based) of the split-conformal quantile of N eval
  scores, which exceeds N when the eval split is too small to guarantee the rate."""
  if not 0.0 < accept_rate <= 1.0:
    raise ValueError(f'The eval accept rate must be in (0, 1], got {accept_rate}')
  # - 1e-9: a float product such as 100 * 0.07 = 7.000000000000001 must not round up to 8.
  return math.ceil((eval_images + 1) * accept_rate - 1e-9)


def threshold_for(eval_scores: np.ndarray, accept_rate: float) -> float:
  """The conformal_rank-th smallest eval score, or the largest when the rank exceeds their count.

  The split-conformal quantile (Angelopoulos & Bates 2021, "A gentle introduction to conformal
  prediction"): a new image exchangeable with the eval split scores at or below it with
  probability >= accept_rate. Hand-written: numpy's quantile methods lack the (N + 1) rank.
  """
  scores = np.sort(np.asarray(eval_scores, np.float64))
  return float(scores[min(conformal_rank(len(scores), accept_rate), len(scores)) - 1])


def fit(
  train: Tuple[np.ndarray, np.ndarray],
  eval_features: np.ndarray,
  eval_logits: np.ndarray,
  reference_features: np.ndarray,
  reference_logits: np.ndarray,
  settings: OodSettings = OodSettings(),
) -> Tuple[Detector, OodRecord]:
  """Fits the Mahalanobis statistics on `train` (features, labels), scores the eval split and the
  reference images with every method, keeps the best AUROC and sets its threshold on the eval
  split. Logits are the served ones (after temperature scaling)."""
  means, precision = fit_class_gaussians(*train)
  candidates = {method: Detector(method) for method in METHODS}
  candidates['mahalanobis'] = Detector('mahalanobis', means, precision)
  scores = {
    method: (
      detector.scores(eval_features, eval_logits),
      detector.scores(reference_features, reference_logits),
    )
    for method, detector in candidates.items()
  }
  auroc = {
    method: float(
      metrics.roc_auc_score(
        np.r_[np.zeros(len(in_scores)), np.ones(len(out_scores))], np.r_[in_scores, out_scores]
      )
    )
    for method, (in_scores, out_scores) in scores.items()
  }
  method = max(METHODS, key=lambda m: (auroc[m], -METHODS.index(m)))
  eval_scores = scores[method][0]
  threshold = threshold_for(eval_scores, settings.eval_accept_rate)
  note = None
  if conformal_rank(len(eval_scores), settings.eval_accept_rate) > len(eval_scores):
    note = (
      f'only {len(eval_scores)} eval images: too few to accept {settings.eval_accept_rate:g} of '
      f'new in-distribution images on average (the threshold is their top score, which a new '
      f'image exceeds with probability 1/{len(eval_scores) + 1})'
    )
  detector = dataclasses.replace(candidates[method], threshold=threshold)
  record = OodRecord(
    method=method,
    threshold=threshold,
    target_eval_accept_rate=settings.eval_accept_rate,
    eval_accept_rate=float(np.mean(eval_scores <= threshold)),
    auroc=auroc,
    train_images=len(train[1]),
    eval_images=len(eval_scores),
    reference_images=len(reference_logits),
    note=note,
  )
  return detector, record


def write(record: OodRecord, path: str) -> None:
  """Writes `record`'s JSON to `path` (any tf.io.gfile path), creating its folder."""
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.gfile.GFile(path, 'w') as f:
    json.dump(record.to_json(), f, indent=2, sort_keys=True)


def read(model_run_uri: Optional[str]) -> Optional[Dict[str, Any]]:
  """The record's JSON in a model_run folder (FILE), or None when the model has none (trained
  before abstention)."""
  path = os.path.join(model_run_uri or '', FILE)
  if not model_run_uri or not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)
