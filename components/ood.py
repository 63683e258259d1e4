"""Out-of-distribution abstention: two scores fitted on the training split, thresholds on the eval
split, so the served model can say that an input is unlike anything it was trained on.

A classifier gives one of its classes to any input, a photo or a CT slice too. An image is in
distribution when both scores are within their thresholds:
- the model score, for inputs the network's features do not know;
- the appearance score, for inputs that do not look like the training images at all: the
  Mahalanobis distance of an APPEARANCE_SIDE x APPEARANCE_SIDE greyscale thumbnail of the model
  input (appearance) to the training split's class means. It needs no trained features, so it
  holds when the network's features are weak (a small or briefly trained model maps some photos
  and CT slices next to chest X-rays) and it cannot be fooled by what the network ignores.

Three scores of the exported (temperature-scaled) model are candidates for the model score, each
higher for inputs further from the training data:
- `mahalanobis` (Lee et al. 2018): the smallest Mahalanobis distance from the penultimate features
  (the output layer's input) to a class mean of the training split, under one covariance shared
  by the classes (pooled within-class), shrunk by Ledoit-Wolf (sklearn) because a split may hold
  too few images for a stable inverse of a 64 x 64 covariance;
- `energy` (Liu et al. 2020): -T logsumexp(logits / T) with T = 1 on the served logits;
- `max_softmax` (Hendrycks & Gimpel 2017): minus the highest class probability.
The Trainer keeps the one whose AUROC (sklearn) best separates the eval split from a reference set
of generated non-CXR images (components.ood_images); ties go to the earlier of METHODS. Each
threshold is an eval score: the split-conformal quantile of the eval split's scores
(threshold_for) at 1 - (1 - eval_accept_rate) / 2, so that a new image like the eval split passes
each score with at least that probability and both with at least `eval_accept_rate` (Bonferroni).

Limits: the thresholds hold for images like the eval split; below 199 eval images (at 0.99) each
is the top eval score and the rate is not reached. A low score says the features look familiar, not
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
COMPARISON = 'in_distribution = score <= threshold and appearance_score <= appearance.threshold'
APPEARANCE_SIDE = 8  # pixels a side of the appearance thumbnail: 64 features


@dataclasses.dataclass(frozen=True)
class OodSettings:
  """How the abstention threshold is set."""

  # Share of new images like the eval split to accept as in distribution, half of the rest
  # refused by each score (threshold_for at score_accept_rate); with too few eval images for
  # that rank (199 at 0.99) each threshold is their top score and the record carries a note.
  eval_accept_rate: float = 0.99

  @property
  def score_accept_rate(self) -> float:
    """The rate each of the two scores is thresholded at: together they accept eval_accept_rate."""
    return 1.0 - (1.0 - self.eval_accept_rate) / 2


def appearance(model_input: tf.Tensor) -> tf.Tensor:
  """float64 [N, APPEARANCE_SIDE ** 2]: the channel mean of the model input [N, H, W, C], area-
  resized to APPEARANCE_SIDE a side; the same graph for the Trainer's fit and for serving."""
  grey = tf.reduce_mean(tf.cast(model_input, tf.float32), axis=-1, keepdims=True)
  thumbnail = tf.image.resize(grey, [APPEARANCE_SIDE, APPEARANCE_SIDE], method='area')
  return tf.reshape(tf.cast(thumbnail, tf.float64), [-1, APPEARANCE_SIDE**2])


@dataclasses.dataclass(frozen=True, eq=False)
class Gaussians:
  """Class `means` [classes, D] and their shared `precision` [D, D] (inverse covariance): the
  Mahalanobis score of a row is its distance to the nearest mean."""

  means: np.ndarray
  precision: np.ndarray

  @classmethod
  def fit(cls, rows: np.ndarray, labels: np.ndarray) -> 'Gaussians':
    return cls(*fit_class_gaussians(rows, labels))

  def scores(self, rows: np.ndarray) -> np.ndarray:
    """float64 [N] Mahalanobis scores of `rows` [N, D]."""
    return mahalanobis_scores(rows, self.means, self.precision)

  def graph_scores(self, rows: tf.Tensor) -> tf.Tensor:
    """`scores` in a TensorFlow graph (float64); the means and precision become graph constants,
    so the SavedModel holds them."""
    centred = tf.cast(rows, tf.float64)[:, tf.newaxis, :] - tf.constant(self.means)
    squared = tf.einsum('ncd,de,nce->nc', centred, tf.constant(self.precision), centred)
    return tf.sqrt(tf.maximum(tf.reduce_min(squared, axis=-1), 0.0))


@dataclasses.dataclass(frozen=True, eq=False)
class Detector:
  """The chosen model score (`method`; its `gaussians` of the penultimate features for
  `mahalanobis`, else None), the `appearance` score's Gaussians of the training thumbnails, and
  their thresholds (infinite until set on the eval split)."""

  method: str
  appearance: Gaussians
  gaussians: Optional[Gaussians] = None
  threshold: float = float('inf')
  appearance_threshold: float = float('inf')

  def scores(self, features: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """float64 [N] model scores of penultimate `features` [N, D], served `logits` [N, C]."""
    if self.method == 'mahalanobis':
      return self.gaussians.scores(features)
    return SCORES[self.method](logits)

  def graph_scores(self, features: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """`scores` in a TensorFlow graph (float64)."""
    if self.method == 'mahalanobis':
      return self.gaussians.graph_scores(features)
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
  eval_accept_rate: float  # measured: the share of eval images within both thresholds
  auroc: Dict[str, float]  # per model score: eval split (negative) vs reference images (positive)
  # The appearance score's `threshold`, `auroc` (as above) and `eval_accept_rate` (alone).
  appearance: Dict[str, float]
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


@dataclasses.dataclass(frozen=True, eq=False)
class Observed:
  """What the scores see of a set of images: penultimate `features` [N, D], served `logits`
  [N, classes], `appearance` thumbnails [N, APPEARANCE_SIDE ** 2] and `labels` [N] (the classes,
  for the training split)."""

  features: np.ndarray
  logits: np.ndarray
  appearance: np.ndarray
  labels: np.ndarray

  def __len__(self) -> int:
    return len(self.labels)


def _auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
  truth = np.r_[np.zeros(len(in_scores)), np.ones(len(out_scores))]
  return float(metrics.roc_auc_score(truth, np.r_[in_scores, out_scores]))


def fit(
  train: Observed, eval_split: Observed, reference: Observed, settings: OodSettings = OodSettings()
) -> Tuple[Detector, OodRecord]:
  """Fits the Mahalanobis statistics of the features and of the appearance on `train`, scores the
  eval split and the reference images with every model score, keeps the best AUROC and sets both
  thresholds on the eval split. Logits are the served ones (after temperature scaling)."""
  appearance = Gaussians.fit(train.appearance, train.labels)
  candidates = {method: Detector(method, appearance) for method in METHODS}
  candidates['mahalanobis'] = Detector(
    'mahalanobis', appearance, Gaussians.fit(train.features, train.labels)
  )
  scores = {
    method: tuple(detector.scores(seen.features, seen.logits) for seen in (eval_split, reference))
    for method, detector in candidates.items()
  }
  auroc = {method: _auroc(*pair) for method, pair in scores.items()}
  method = max(METHODS, key=lambda m: (auroc[m], -METHODS.index(m)))
  rate = settings.score_accept_rate
  eval_scores = scores[method][0]
  eval_appearance = appearance.scores(eval_split.appearance)
  detector = dataclasses.replace(
    candidates[method],
    threshold=threshold_for(eval_scores, rate),
    appearance_threshold=threshold_for(eval_appearance, rate),
  )
  accepted_appearance = eval_appearance <= detector.appearance_threshold
  note = None
  if conformal_rank(len(eval_split), rate) > len(eval_split):
    note = (
      f'only {len(eval_split)} eval images: too few to accept {settings.eval_accept_rate:g} of '
      f'new in-distribution images on average (each threshold is their top score, which a new '
      f'image exceeds with probability 1/{len(eval_split) + 1})'
    )
  record = OodRecord(
    method=method,
    threshold=detector.threshold,
    target_eval_accept_rate=settings.eval_accept_rate,
    eval_accept_rate=float(np.mean((eval_scores <= detector.threshold) & accepted_appearance)),
    auroc=auroc,
    appearance={
      'threshold': detector.appearance_threshold,
      'auroc': _auroc(eval_appearance, appearance.scores(reference.appearance)),
      'eval_accept_rate': float(np.mean(accepted_appearance)),
    },
    train_images=len(train),
    eval_images=len(eval_split),
    reference_images=len(reference),
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
