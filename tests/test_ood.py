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
  detector = ood.Detector(method, *ood.fit_class_gaussians(features, labels))
  queries = np.r_[features[:4], rng.normal(0, 5, (4, features.shape[1]))].astype(np.float32)
  logits = rng.normal(0, 3, (8, 3))
  np.testing.assert_allclose(
    detector.graph_scores(tf.constant(queries), tf.constant(logits)).numpy(),
    detector.scores(queries, logits),
    rtol=1e-12,
  )


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


def _fit(rng, eval_count, reference_logits=None):
  """ood.fit on three training clusters, an eval split like them and far-away references; the
  logits are equal for all (so energy and max-softmax cannot tell them apart) unless given."""
  train = _clusters(rng, 90)
  eval_features, _ = _clusters(rng, eval_count)
  reference = rng.normal(0, 1, (30, eval_features.shape[1])) + 15
  eval_logits = np.zeros((eval_count, 3))
  reference_logits = np.zeros((30, 3)) if reference_logits is None else reference_logits
  return ood.fit(train, eval_features, eval_logits, reference, reference_logits), (
    train,
    eval_features,
    reference,
  )


def test_fit_keeps_the_best_auroc_and_sets_its_threshold_on_the_eval_split():
  (detector, record), (train, eval_features, reference) = _fit(np.random.default_rng(5), 200)
  means, precision = ood.fit_class_gaussians(*train)
  eval_scores = ood.mahalanobis_scores(eval_features, means, precision)
  reference_scores = ood.mahalanobis_scores(reference, means, precision)
  truth = np.r_[np.zeros(200), np.ones(30)]
  assert record.auroc == {
    'mahalanobis': metrics.roc_auc_score(truth, np.r_[eval_scores, reference_scores]),
    'energy': 0.5,
    'max_softmax': 0.5,
  }
  assert record.auroc['mahalanobis'] == 1.0
  assert (record.method, detector.method) == ('mahalanobis', 'mahalanobis')
  np.testing.assert_array_equal(detector.means, means)
  # Rank ceil(201 * 0.99) = 199 of 200.
  assert record.threshold == detector.threshold == np.sort(eval_scores)[198]
  assert record.eval_accept_rate == 0.995 and record.target_eval_accept_rate == 0.99
  assert (record.train_images, record.eval_images, record.reference_images) == (90, 200, 30)
  assert record.note is None
  assert record.to_json()['comparison'] == 'in_distribution = score <= threshold'


def test_fit_prefers_another_score_when_it_separates_better():
  rng = np.random.default_rng(6)
  confident = np.tile([[8.0, 0.0, 0.0]], (30, 1))  # references get higher logits: lower energy
  (detector, record), _ = _fit(rng, 40, reference_logits=-confident)
  assert record.auroc['mahalanobis'] == 1.0 and record.auroc['energy'] == 1.0
  assert record.method == 'mahalanobis'  # a tie goes to the first of METHODS
  assert ood.METHODS.index('mahalanobis') < ood.METHODS.index('energy')
  far = _clusters(rng, 90)
  detector, record = ood.fit(
    far, far[0][:40], np.zeros((40, 3)), far[0][40:70], np.tile([[0.0, 0.0, -9.0]], (30, 1))
  )
  assert record.auroc['energy'] == 1.0 > record.auroc['mahalanobis']
  assert (record.method, detector.method, detector.means) == ('energy', 'energy', None)


def test_a_small_eval_split_still_gets_a_threshold_and_a_note():
  (detector, record), (train, eval_features, reference) = _fit(np.random.default_rng(7), 12)
  means, precision = ood.fit_class_gaussians(*train)
  top = ood.mahalanobis_scores(eval_features, means, precision).max()
  assert record.threshold == detector.threshold == top
  assert record.eval_images == 12 and record.eval_accept_rate == 1.0
  assert record.note == (
    'only 12 eval images: too few to accept 0.99 of new in-distribution images on average (the '
    'threshold is their top score, which a new image exceeds with probability 1/13)'
  )
  # At 0.9, 12 images suffice (rank ceil(13 * 0.9) = 12).
  _, record = ood.fit(
    train,
    eval_features,
    np.zeros((12, 3)),
    reference,
    np.zeros((30, 3)),
    ood.OodSettings(eval_accept_rate=0.9),
  )
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
