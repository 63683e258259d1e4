"""Temperature scaling and the calibration figures against plain numpy references."""

import numpy as np
import pytest

from components import calibration


def _softmax(logits):
  e = np.exp(logits - logits.max(axis=1, keepdims=True))
  return e / e.sum(axis=1, keepdims=True)


def _calibrated_logits(n=4000, seed=0):
  """Logits whose softmax is each label's true distribution: temperature 1 is optimal."""
  rng = np.random.default_rng(seed)
  logits = rng.normal(0, 1.5, (n, 3))
  labels = np.array([rng.choice(3, p=p) for p in _softmax(logits)])
  return logits, labels


def _reference_ece(probabilities, labels, bins=15):
  """Guo et al. (2017): bins ((m-1)/M, m/M], the first also holding 0, by explicit loops."""
  edges = np.linspace(0, 1, bins + 1)
  n, ece = len(labels), 0.0
  for m in range(bins):
    members = [
      i
      for i in range(n)
      if edges[m] < probabilities[i].max() <= edges[m + 1]
      or (m == 0 and probabilities[i].max() == 0)
    ]
    if members:
      accuracy = np.mean([np.argmax(probabilities[i]) == labels[i] for i in members])
      confidence = np.mean([probabilities[i].max() for i in members])
      ece += len(members) / n * abs(accuracy - confidence)
  return ece


def test_an_eval_split_without_errors_keeps_temperature_1_and_says_why():
  logits, labels = _calibrated_logits(n=200)
  separated = logits[np.argmax(logits, axis=1) == labels]
  own = labels[np.argmax(logits, axis=1) == labels]
  # The NLL of an error-free split keeps falling as T shrinks: there is no minimum to fit.
  nlls = [calibration.nll(separated, own, t) for t in (1.0, 0.1, 0.01, 0.001)]
  assert nlls == sorted(nlls, reverse=True) and nlls[-1] < 1e-6
  assert calibration.fit_temperature(separated, own) == 1.0
  record = calibration.calibration_record(separated, own, 1.0)
  assert record['not_fitted'].startswith('every eval image is classified correctly')
  assert record['nll'] == record['nll_before']
  # One error (or a tie) is enough for a minimum.
  assert calibration.unfittable(logits, labels) is None
  tied = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
  assert calibration.unfittable(tied, np.array([0, 1])) is None
  assert calibration.unfittable(np.array([[np.nan, 0.0, 0.0]]), np.array([0])).startswith(
    'non-finite logits'
  )


def test_temperature_undoes_logits_times_3_and_keeps_every_argmax():
  logits, labels = _calibrated_logits()
  over_confident = 3 * logits
  temperature = calibration.fit_temperature(over_confident, labels)
  assert temperature == pytest.approx(3.0, rel=0.1)
  assert calibration.nll(over_confident, labels, temperature) < calibration.nll(
    over_confident, labels
  )
  # The fitted T minimises the NLL: nudging it either way does worse.
  for factor in (0.98, 1.02):
    assert calibration.nll(over_confident, labels, temperature) < calibration.nll(
      over_confident, labels, temperature * factor
    )
  np.testing.assert_array_equal(
    np.argmax(over_confident / temperature, axis=1), np.argmax(over_confident, axis=1)
  )
  before = calibration.top_label_ece(_softmax(over_confident), labels)
  after = calibration.top_label_ece(_softmax(over_confident / temperature), labels)
  assert after < before / 3


def test_nll_equals_the_mean_negative_log_softmax():
  logits, labels = _calibrated_logits(50, seed=1)
  expected = -np.mean(np.log(_softmax(logits / 2.0)[np.arange(50), labels]))
  assert calibration.nll(logits, labels, 2.0) == pytest.approx(expected, rel=1e-12)


def test_top_label_ece_equals_a_loop_reference_including_edge_values():
  rng = np.random.default_rng(2)
  probabilities = rng.dirichlet([0.5, 0.5, 0.5], 500)
  # Confidences exactly on bin edges, at 1, and an all-zero row (top probability 0).
  edges = np.linspace(0, 1, 16)
  probabilities[:3] = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
  for i, edge in enumerate(edges[6:15], 3):
    probabilities[i] = [edge, (1 - edge) / 2, (1 - edge) / 2]
  labels = rng.integers(0, 3, 500)
  assert calibration.top_label_ece(probabilities, labels) == pytest.approx(
    _reference_ece(probabilities, labels), abs=1e-12
  )
  counts, _, _ = calibration.bin_statistics(probabilities, labels)
  assert counts.sum() == 500 and counts[0] == 1 and counts[-1] >= 2


def test_ece_of_a_perfectly_calibrated_bin_is_0_and_of_a_sure_miss_1():
  # Confidence 0.6 in every row, 3 of 5 right.
  probabilities = np.tile([0.6, 0.3, 0.1], (5, 1))
  assert calibration.top_label_ece(probabilities, [0, 0, 0, 1, 2]) == pytest.approx(0.0)
  assert calibration.top_label_ece([[0.0, 1.0, 0.0]], [0]) == pytest.approx(1.0)


def test_brier_is_the_mean_squared_distance_to_the_one_hot_label():
  rng = np.random.default_rng(3)
  probabilities = rng.dirichlet([1, 1, 1], 200)
  labels = rng.integers(0, 3, 200)
  expected = np.mean(
    [
      sum((probabilities[i, k] - (k == labels[i])) ** 2 for k in range(3))
      for i in range(len(labels))
    ]
  )
  assert calibration.brier(probabilities, labels) == pytest.approx(expected, rel=1e-12)
  assert calibration.brier([[1.0, 0.0, 0.0]], [1]) == 2.0


def test_calibration_record_and_reliability_diagram():
  logits, labels = _calibrated_logits(300, seed=4)
  record = calibration.calibration_record(3 * logits, labels, 3.0)
  assert record['nll'] == pytest.approx(calibration.nll(logits, labels))
  assert record['ece'] == pytest.approx(calibration.top_label_ece(_softmax(logits), labels))
  assert record['brier_before'] == pytest.approx(calibration.brier(_softmax(3 * logits), labels))
  assert record['images'] == 300 and record['nll'] < record['nll_before']
  png = calibration.reliability_diagram_png(3 * logits, labels, 3.0, 'eval split')
  assert png[:8] == b'\x89PNG\r\n\x1a\n'
