"""The COVID operating point: the highest grid threshold reaching the target sensitivity, checked
against scikit-learn's recall and confusion matrix."""

import numpy as np
import pytest
from sklearn import metrics as sk_metrics

from components import operating_point

GRID = np.array(operating_point.GRID)


def _recall(is_covid, scores, threshold):
  return sk_metrics.recall_score(is_covid, scores > threshold)


def _check_highest(is_covid, scores, point):
  """The threshold reaches the target (sklearn's recall) and the next grid value up does not."""
  i = operating_point.GRID.index(point.threshold)
  assert _recall(is_covid, scores, point.threshold) >= point.target_sensitivity
  if i + 1 < len(GRID):
    assert _recall(is_covid, scores, GRID[i + 1]) < point.target_sensitivity


def test_the_grid_is_tfmas_confusion_matrix_plot_grid():
  assert len(GRID) == 1002 and GRID[0] == -1e-6 and GRID[-1] == 1.0
  np.testing.assert_allclose(np.diff(GRID[1:]), 1e-3)


@pytest.mark.parametrize('target', [0.5, 0.8, 0.9, 0.95, 0.99, 1.0])
def test_highest_threshold_reaching_the_target_on_random_scores(target):
  rng = np.random.default_rng(int(target * 100))
  is_covid = rng.random(400) < 0.3
  scores32 = np.clip(rng.normal(np.where(is_covid, 0.7, 0.3), 0.2), 0, 1).astype(np.float32)
  point = operating_point.choose(scores32, is_covid, target)
  scores = scores32.astype(np.float64)  # as TFMA compares a float32 prediction
  assert point.threshold in operating_point.GRID and point.target_sensitivity == target
  _check_highest(is_covid, scores, point)
  # sklearn's ROC counts `score >= θ` as positive: the first θ reaching the target, and the
  # highest grid value below it.
  _, tpr, roc_thresholds = sk_metrics.roc_curve(is_covid, scores, drop_intermediate=False)
  reached = roc_thresholds[np.argmax(tpr >= target)]
  assert point.threshold == GRID[GRID < reached].max()
  (tn, fp), (fn, tp) = sk_metrics.confusion_matrix(is_covid, scores > point.threshold)
  assert (point.true_positives, point.false_negatives) == (tp, fn)
  assert (point.true_negatives, point.false_positives) == (tn, fp)
  assert point.sensitivity.value == pytest.approx(tp / (tp + fn))
  assert point.specificity.value == pytest.approx(tn / (tn + fp))


def test_a_score_equal_to_a_grid_value_is_not_above_it():
  is_covid = np.array([True, True, True, True, False])
  scores = np.array([0.5, 0.5, 0.9, 0.9, 0.7])
  # Every COVID image above the threshold: 0.5 itself is not above 0.5, so 0.499.
  point = operating_point.choose(scores, is_covid, 1.0)
  assert point.threshold == pytest.approx(0.499)
  _check_highest(is_covid, scores, point)
  # Half of them: the two at 0.9 are above 0.899, not above 0.9.
  point = operating_point.choose(scores, is_covid, 0.5)
  assert point.threshold == pytest.approx(0.899)
  _check_highest(is_covid, scores, point)
  assert (point.true_positives, point.false_positives) == (2, 0)


def test_target_1_with_a_covid_image_scored_0_takes_the_lowest_grid_value():
  is_covid = np.array([True, True, False])
  point = operating_point.choose(np.array([0.0, 0.6, 0.2]), is_covid, 1.0)
  assert point.threshold == -1e-6
  assert (point.true_positives, point.true_negatives, point.false_positives) == (2, 0, 1)


@pytest.mark.parametrize(
  'scores, is_covid, target, message',
  [
    ([0.2, 0.9], [False, False], 0.95, 'No COVID image in the split'),
    ([0.2, np.nan], [True, False], 0.95, r'1 score\(s\) are not finite'),
    ([0.2, 0.9], [True, False], 0.0, r'target sensitivity must be in \(0, 1\], got 0.0'),
    ([0.2, 0.9], [True, False], 1.2, r'target sensitivity must be in \(0, 1\], got 1.2'),
    ([0.2, 0.9], [True], 0.95, 'must be two 1-D arrays'),
  ],
)
def test_impossible_choices_are_clear_errors(scores, is_covid, target, message):
  with pytest.raises(ValueError, match=message):
    operating_point.choose(np.array(scores), np.array(is_covid), target)


def test_the_stored_point_round_trips(tmp_path):
  point = operating_point.choose(np.array([0.3, 0.8, 0.1]), np.array([True, True, False]), 0.95)
  path = operating_point.write(point, str(tmp_path))
  assert path == str(tmp_path / 'assets.extra' / 'operating_point.json')
  assert operating_point.read(str(tmp_path)) == point
  with pytest.raises(FileNotFoundError, match='No operating point'):
    operating_point.read(str(tmp_path / 'elsewhere'))
