"""Temperature scaling and calibration figures: NLL, top-label ECE, multi-class Brier score.

Temperature scaling (Guo et al., 2017) divides a model's logits by one scalar T > 0, fitted to
minimise the negative log-likelihood on held-out data. The argmax, hence every argmax figure,
stays the same; only the confidence changes. The same binning serves the numpy figures here and
the TFMA metrics of components.evaluation.calibration_metrics, so both give the same ECE.
"""

import io
from typing import Dict, Optional, Tuple

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt
import numpy as np
from scipy import optimize
from scipy import special

ECE_BINS = 15
# Temperatures searched, as log T: 0.01 to 100 covers any useful rescaling of the logits.
LOG_T_BOUNDS = (np.log(0.01), np.log(100.0))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
  """Mean negative log-likelihood of integer `labels` under softmax(logits / temperature)."""
  log_p = special.log_softmax(np.asarray(logits, np.float64) / temperature, axis=-1)
  return float(-np.mean(log_p[np.arange(len(log_p)), np.asarray(labels)]))


def unfittable(logits: np.ndarray, labels: np.ndarray) -> Optional[str]:
  """Why no temperature can be fitted on these logits, or None.

  When every example's own class has the strictly highest logit (a small or easy eval split is
  often classified without error), the NLL keeps falling as T -> 0 and has no minimum: a fitted T
  would only push every probability to 0 or 1. Non-finite logits (a diverged model) have nothing
  to calibrate.
  """
  logits = np.asarray(logits, np.float64)
  if not np.all(np.isfinite(logits)):
    return 'non-finite logits (a diverged model): T = 1 kept'
  own = logits[np.arange(len(logits)), np.asarray(labels)]
  others = np.where(np.eye(logits.shape[-1], dtype=bool)[np.asarray(labels)], -np.inf, logits)
  if np.all(own > others.max(axis=-1)):
    return (
      'every eval image is classified correctly, so the NLL keeps falling as T -> 0 and has no '
      'minimum: T = 1 kept (a fitted T would claim certainty)'
    )
  return None


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
  """The T > 0 minimising nll(logits, labels, T), searched over log T (bounded); 1.0 when
  `unfittable`."""
  if not len(logits):
    raise ValueError('Cannot fit a temperature on no examples')
  if unfittable(logits, labels):
    return 1.0
  result = optimize.minimize_scalar(
    lambda log_t: nll(logits, labels, np.exp(log_t)),
    bounds=LOG_T_BOUNDS,
    method='bounded',
    options={'xatol': 1e-6},
  )
  return float(np.exp(result.x))


def bin_edges(bins: int = ECE_BINS) -> np.ndarray:
  """`bins` + 1 equal-width edges over [0, 1]."""
  return np.linspace(0.0, 1.0, bins + 1)


def bin_statistics(
  probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Per bin of the top probability: (examples, sum of top probabilities, correct argmaxes).

  Bin m holds confidences in (edges[m], edges[m+1]]; the first bin also holds 0.
  """
  probabilities = np.asarray(probabilities, np.float64)
  confidence = probabilities.max(axis=-1)
  correct = (probabilities.argmax(axis=-1) == np.asarray(labels)).astype(np.float64)
  index = np.digitize(confidence, bin_edges(bins)[1:-1], right=True)
  return (
    np.bincount(index, minlength=bins).astype(np.float64),
    np.bincount(index, weights=confidence, minlength=bins),
    np.bincount(index, weights=correct, minlength=bins),
  )


def ece_from_bins(
  counts: np.ndarray, confidence_sums: np.ndarray, correct_sums: np.ndarray
) -> float:
  """ECE from bin_statistics: sum over bins of (bin share) * |accuracy - mean confidence|."""
  total = float(np.sum(counts))
  if not total:
    return float('nan')
  return float(np.sum(np.abs(np.asarray(correct_sums) - np.asarray(confidence_sums))) / total)


def top_label_ece(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
  """Expected calibration error of the top label over `bins` equal-width confidence bins."""
  return ece_from_bins(*bin_statistics(probabilities, labels, bins))


def squared_errors(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """Per example, sum over classes of (p_k - onehot_k)^2."""
  probabilities = np.asarray(probabilities, np.float64)
  onehot = np.eye(probabilities.shape[-1])[np.asarray(labels)]
  return np.sum((probabilities - onehot) ** 2, axis=-1)


def brier(probabilities: np.ndarray, labels: np.ndarray) -> float:
  """Multi-class Brier score: the mean of squared_errors (0 best, 2 worst)."""
  return float(np.mean(squared_errors(probabilities, labels)))


def calibration_record(logits: np.ndarray, labels: np.ndarray, temperature: float) -> Dict:
  """The figures before (T = 1) and after scaling by `temperature`, JSON-ready."""
  before = special.softmax(np.asarray(logits, np.float64), axis=-1)
  after = special.softmax(np.asarray(logits, np.float64) / temperature, axis=-1)
  return {
    'temperature': temperature,
    'not_fitted': unfittable(logits, labels),  # why T = 1 was kept, or None
    'images': len(labels),
    'nll_before': nll(logits, labels),
    'nll': nll(logits, labels, temperature),
    'ece_before': top_label_ece(before, labels),
    'ece': top_label_ece(after, labels),
    'brier_before': brier(before, labels),
    'brier': brier(after, labels),
  }


def reliability_diagram_png(
  logits: np.ndarray, labels: np.ndarray, temperature: float, title: str, bins: int = ECE_BINS
) -> bytes:
  """Accuracy against mean confidence per bin, before and after temperature scaling."""
  fig, ax = plt.subplots(figsize=(5, 5))
  ax.plot([0, 1], [0, 1], color='gray', linestyle='--', label='perfect calibration')
  for t, name in ((1.0, 'before'), (temperature, f'after (T = {temperature:.3g})')):
    probabilities = special.softmax(np.asarray(logits, np.float64) / t, axis=-1)
    counts, confidence_sums, correct_sums = bin_statistics(probabilities, labels, bins)
    filled = counts > 0
    ece = ece_from_bins(counts, confidence_sums, correct_sums)
    ax.plot(
      confidence_sums[filled] / counts[filled],
      correct_sums[filled] / counts[filled],
      marker='o',
      label=f'{name}: ECE {ece:.3f}',
    )
  ax.set_xlim(-0.02, 1.02)
  ax.set_ylim(-0.02, 1.02)
  ax.set_xlabel('mean confidence (top probability)')
  ax.set_ylabel('accuracy')
  ax.set_title(title)
  ax.grid(True, alpha=0.3)
  ax.legend(loc='upper left')
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=100, bbox_inches='tight')
  plt.close(fig)
  return buffer.getvalue()
