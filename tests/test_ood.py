"""Out-of-distribution scores, their choice and threshold (components.ood), and the reference
non-CXR images (components.ood_images), against numpy, scipy and sklearn."""

import dataclasses
import io
import json

import numpy as np
from PIL import Image
import pytest
from scipy import special
from scipy.spatial import distance
from sklearn import covariance
from sklearn import metrics
import tensorflow as tf

from components import ood
from components import ood_images


def _clusters(rng, count, dim=6, spread=1.0):
  """Three Gaussian classes with correlated features, and their labels."""
  mixing = rng.normal(size=(dim, dim))
  labels = np.arange(count) % 3
  centres = np.array([np.eye(dim)[0] * 4, np.eye(dim)[1] * 4, np.zeros(dim)])
  return centres[labels] + spread * rng.normal(size=(count, dim)) @ mixing, labels


def test_class_gaussians_pool_the_within_class_covariance_with_ledoit_wolf_shrinkage():
  features, labels = _clusters(np.random.default_rng(0), 60)
  means, precision = ood.fit_class_gaussians(features, labels)
  expected_means = np.stack([features[labels == c].mean(axis=0) for c in range(3)])
  np.testing.assert_allclose(means, expected_means)
  centred = features - expected_means[labels]
  shrunk, _ = covariance.ledoit_wolf(centred, assume_centered=True)
  np.testing.assert_allclose(np.linalg.inv(precision), shrunk, rtol=1e-8, atol=1e-10)
  # Shrinkage: not the plain pooled covariance.
  assert not np.allclose(shrunk, centred.T @ centred / len(centred))


def test_mahalanobis_score_is_the_smallest_distance_to_a_class_mean_as_scipy_gives_it():
  rng = np.random.default_rng(1)
  features, labels = _clusters(rng, 45)
  means, precision = ood.fit_class_gaussians(features, labels)
  queries = np.r_[features[:5], rng.normal(0, 10, (5, features.shape[1]))]
  expected = [min(distance.mahalanobis(q, m, precision) for m in means) for q in queries]
  np.testing.assert_allclose(ood.mahalanobis_scores(queries, means, precision), expected)


def test_energy_and_max_softmax_scores():
  logits = np.random.default_rng(2).normal(0, 3, (7, 3))
  np.testing.assert_allclose(ood.energy_scores(logits), -np.log(np.exp(logits).sum(axis=1)))
  np.testing.assert_allclose(
    ood.max_softmax_scores(logits), -special.softmax(logits, axis=1).max(axis=1)
  )


@pytest.mark.parametrize('method', ood.METHODS)
def test_the_graph_score_is_the_numpy_score(method):
  rng = np.random.default_rng(3)
  features, labels = _clusters(rng, 30)
  gaussians = ood.Gaussians.fit(features, labels)
  detector = ood.Detector(method, appearance=gaussians, gaussians=gaussians)
  queries = np.r_[features[:4], rng.normal(0, 5, (4, features.shape[1]))].astype(np.float32)
  logits = rng.normal(0, 3, (8, 3))
  np.testing.assert_allclose(
    detector.graph_scores(tf.constant(queries), tf.constant(logits)).numpy(),
    detector.scores(queries, logits),
    rtol=1e-12,
  )
  np.testing.assert_allclose(
    detector.appearance.graph_scores(tf.constant(queries)).numpy(),
    ood.mahalanobis_scores(queries, *ood.fit_class_gaussians(features, labels)),
    rtol=1e-12,
  )


@pytest.mark.parametrize('channels', [1, 3])
def test_appearance_is_the_channel_mean_averaged_over_blocks(channels):
  """On a side divisible by APPEARANCE_SIDE, the area resize is the mean of each block."""
  side = ood.APPEARANCE_SIDE
  images = np.random.default_rng(10).normal(size=(5, side * 4, side * 4, channels))
  expected = images.mean(axis=-1).reshape(5, side, 4, side, 4).mean(axis=(2, 4))
  got = ood.appearance(tf.constant(images, tf.float32)).numpy()
  assert got.shape == (5, side * side) and got.dtype == np.float64
  np.testing.assert_allclose(got, expected.reshape(5, -1), rtol=1e-5, atol=1e-6)


def test_threshold_is_the_split_conformal_quantile_of_the_eval_scores():
  scores = np.random.default_rng(4).normal(size=1000)
  # Rank ceil(1001 * 0.99) = 991 of 1000: 991 eval images accepted.
  threshold = ood.threshold_for(scores, 0.99)
  assert threshold == np.sort(scores)[990] and np.mean(scores <= threshold) == 0.991
  assert ood.threshold_for(scores[:299], 0.99) == np.sort(scores[:299])[296]  # rank 297
  assert ood.threshold_for(scores, 0.9) == np.sort(scores)[900]  # rank ceil(900.9)
  assert ood.conformal_rank(99, 0.99) == 99 and ood.conformal_rank(98, 0.99) == 99
  assert ood.threshold_for(scores[:98], 0.99) == scores[:98].max()  # too few: the top score
  assert ood.conformal_rank(99, 0.07) == 7  # 100 * 0.07 is 7.000000000000001 in floats
  with pytest.raises(ValueError, match=r'accept rate must be in \(0, 1\], got 1.5'):
    ood.threshold_for(scores, 1.5)


def test_new_exchangeable_images_are_accepted_at_the_target_rate():
  """Over many draws of an eval split of 150 and a new image from the same distribution, the
  new image is accepted with probability >= 0.99 (the conformal guarantee; exactly
  ceil(151 * 0.99) / 151 = 150/151 here)."""
  rng = np.random.default_rng(9)
  draws = rng.normal(size=(20000, 151))
  thresholds = np.array([ood.threshold_for(row[:150], 0.99) for row in draws])
  accepted = np.mean(draws[:, 150] <= thresholds)
  assert accepted == pytest.approx(150 / 151, abs=0.003) and accepted >= 0.99


def _observed(features, logits, labels, rng):
  """Observed images whose appearance is a noisy copy of their first four features."""
  appearance = features[:, :4] + rng.normal(0, 0.5, (len(features), 4))
  return ood.Observed(features, logits, appearance, labels)


def _rows(seen, rows):
  return ood.Observed(*(getattr(seen, f.name)[rows] for f in dataclasses.fields(seen)))


def _fit(rng, eval_count, reference_logits=None, settings=ood.OodSettings()):
  """ood.fit on three training clusters, an eval split like them and far-away references; the
  logits are equal for all (so energy and max-softmax cannot tell them apart) unless given."""
  features, labels = _clusters(rng, 90)
  train = _observed(features, np.zeros((90, 3)), labels, rng)
  eval_features, eval_labels = _clusters(rng, eval_count)
  eval_split = _observed(eval_features, np.zeros((eval_count, 3)), eval_labels, rng)
  reference_logits = np.zeros((30, 3)) if reference_logits is None else reference_logits
  reference = _observed(
    rng.normal(0, 1, (30, features.shape[1])) + 15, reference_logits, np.zeros(30), rng
  )
  return ood.fit(train, eval_split, reference, settings), (train, eval_split, reference)


def test_fit_keeps_the_best_auroc_and_sets_both_thresholds_on_the_eval_split():
  (detector, record), (train, eval_split, reference) = _fit(np.random.default_rng(5), 400)
  truth = np.r_[np.zeros(400), np.ones(30)]
  scores, thresholds = {}, {}
  for name, rows in (('mahalanobis', 'features'), ('appearance', 'appearance')):
    means, precision = ood.fit_class_gaussians(getattr(train, rows), train.labels)
    scores[name] = [ood.mahalanobis_scores(getattr(s, rows), means, precision) for s in
                    (eval_split, reference)]  # fmt: skip
    # Each score at 1 - 0.01 / 2: rank ceil(401 * 0.995) = 399 of 400.
    thresholds[name] = np.sort(scores[name][0])[398]
  assert record.auroc == {
    'mahalanobis': metrics.roc_auc_score(truth, np.r_[tuple(scores['mahalanobis'])]),
    'energy': 0.5,
    'max_softmax': 0.5,
  }
  assert record.auroc['mahalanobis'] == 1.0
  assert (record.method, detector.method) == ('mahalanobis', 'mahalanobis')
  assert record.threshold == detector.threshold == thresholds['mahalanobis']
  assert record.appearance == {
    'threshold': thresholds['appearance'],
    'auroc': metrics.roc_auc_score(truth, np.r_[tuple(scores['appearance'])]),
    'eval_accept_rate': 399 / 400,
  }
  assert detector.appearance_threshold == thresholds['appearance']
  accepted = (scores['mahalanobis'][0] <= thresholds['mahalanobis']) & (
    scores['appearance'][0] <= thresholds['appearance']
  )
  assert record.eval_accept_rate == accepted.mean() >= 0.99
  assert record.target_eval_accept_rate == 0.99
  assert (record.train_images, record.eval_images, record.reference_images) == (90, 400, 30)
  assert record.note is None
  assert record.to_json()['comparison'] == (
    'in_distribution = score <= threshold and appearance_score <= appearance.threshold'
  )


def test_fit_prefers_another_score_when_it_separates_better():
  rng = np.random.default_rng(6)
  confident = np.tile([[8.0, 0.0, 0.0]], (30, 1))  # references get higher logits: lower energy
  (detector, record), _ = _fit(rng, 40, reference_logits=-confident)
  assert record.auroc['mahalanobis'] == 1.0 and record.auroc['energy'] == 1.0
  assert record.method == 'mahalanobis'  # a tie goes to the first of METHODS
  assert ood.METHODS.index('mahalanobis') < ood.METHODS.index('energy')
  features, labels = _clusters(rng, 90)
  seen = _observed(features, np.zeros((90, 3)), labels, rng)
  reference = dataclasses.replace(
    _rows(seen, slice(40, 70)), logits=np.tile([[0.0, 0.0, -9.0]], (30, 1))
  )
  detector, record = ood.fit(seen, _rows(seen, slice(40)), reference)
  assert record.auroc['energy'] == 1.0 > record.auroc['mahalanobis']
  assert (record.method, detector.method, detector.gaussians) == ('energy', 'energy', None)


def test_a_small_eval_split_still_gets_thresholds_and_a_note():
  (detector, record), (train, eval_split, _) = _fit(np.random.default_rng(7), 12)
  top = ood.Gaussians.fit(train.features, train.labels).scores(eval_split.features).max()
  assert record.threshold == detector.threshold == top
  top_appearance = ood.Gaussians.fit(train.appearance, train.labels).scores(eval_split.appearance)
  assert record.appearance['threshold'] == detector.appearance_threshold == top_appearance.max()
  assert record.eval_images == 12 and record.eval_accept_rate == 1.0
  assert record.note == (
    'only 12 eval images: too few to accept 0.99 of new in-distribution images on average (each '
    'threshold is their top score, which a new image exceeds with probability 1/13)'
  )
  # At 0.8, 12 images suffice: each score at 0.9, rank ceil(13 * 0.9) = 12.
  (_, record), _ = _fit(np.random.default_rng(7), 12, settings=ood.OodSettings(0.8))
  assert record.note is None and record.threshold == top


def test_record_is_written_as_json(tmp_path):
  (_, record), _ = _fit(np.random.default_rng(8), 30)
  path = str(tmp_path / 'assets.extra' / ood.FILE)
  ood.write(record, path)
  with open(path) as f:
    assert json.load(f) == dict(dataclasses.asdict(record), comparison=ood.COMPARISON)


def test_reference_images_are_deterministic_pngs_of_every_kind():
  images = ood_images.generate(per_kind=3, size=40, seed=1)
  assert [kind for kind, _ in images] == [kind for kind in ood_images.KINDS for _ in range(3)]
  assert images == ood_images.generate(per_kind=3, size=40, seed=1)
  assert len({png for _, png in images}) == len(images)
  assert images != ood_images.generate(per_kind=3, size=40, seed=2)
  for kind, png in images:
    decoded = Image.open(io.BytesIO(png))
    assert decoded.format == 'PNG' and decoded.size == (40, 40), kind
  text = np.asarray(Image.open(io.BytesIO(dict(images)['text'])))
  assert 0.02 < np.mean(np.abs(text.astype(int) - np.median(text)) > 100) < 0.5  # glyph pixels
