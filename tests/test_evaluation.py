"""The Evaluator gate: argmax per-class metrics equal scikit-learn's, their intervals scipy's,
and blessing decisions (on the lower bound by default, or on the point figure).

Runs TFX's Evaluator executor (TFMA, Beam in memory) on a tiny fake SavedModel with the
project's `serving_examples` signature and raw tf.Examples.
"""

import os

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as sk_metrics
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components import calibration
from components import labels
from components import operating_point
from components.evaluation import classification_report
from components.evaluation import operating_point_figures
from components.evaluation import results
from components.evaluation.gate import Gate
from components.pusher import executor as pusher_executor
from components.pusher import versioned_dir
import fake_cxr_model
from pipeline import cli
from pipeline import report_gate

COVID, NORMAL, VIRAL = 0, 1, 2
GOOD_TABLE = [
  [0.8, 0.1, 0.1],
  [0.1, 0.7, 0.2],
  [0.2, 0.2, 0.6],
  [0.45, 0.4, 0.15],
  [0.30004, 0.36, 0.33996],  # P(COVID) less than 1e-4 above the grid value 0.3
]
# The good model's stored operating point: P(COVID) > 0.3 (its eval counts are not used here).
GOOD_POINT = operating_point.OperatingPoint('COVID', 0.3, 0.95, 19, 1, 30, 10)
# Row 3 turns NORMAL: half of the COVID examples are missed (recall 0.5, accuracy 14/18).
BAD_TABLE = GOOD_TABLE[:3] + [[0.3, 0.6, 0.1]] + GOOD_TABLE[4:]
# (table row, label, source): the good model gets 5 of 6 right in every class; source B holds
# 2 COVID examples, one missed (COVID recall 0.5 on that slice).
TEST_SPLIT = (
  [
    (0, COVID, 'A'),
    (0, COVID, 'A'),
    (0, COVID, 'B'),
    (3, COVID, 'A'),
    (3, COVID, 'A'),
    (1, COVID, 'B'),
  ]
  + [(1, NORMAL, 'A')] * 4
  + [(4, NORMAL, 'A'), (3, NORMAL, 'A')]
  + [(2, VIRAL, 'A')] * 5
  + [(4, VIRAL, 'A')]
)
# The view_position of each TEST_SPLIT example (its age_band is 'unknown'): subgroup slices.
VIEWS = ['AP' if i % 3 == 0 else 'PA' for i in range(len(TEST_SPLIT))]
# Every image right, but only 5 COVID images: COVID recall 5/5, 95% CI 0.566-1.
SMALL_COVID_SPLIT = [(0, COVID, 'A')] * 5 + [(1, NORMAL, 'A')] * 30 + [(2, VIRAL, 'A')] * 30


def _scipy_wilson(k, n):
  ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method='wilson')
  return ci.low, ci.high


def _argmax_predictions(table):
  return [int(np.argmax(table[row])) for row, _, _ in TEST_SPLIT]


def _true_labels():
  return [label for _, label, _ in TEST_SPLIT]


def _probabilities(table, split=TEST_SPLIT):
  """The model's probabilities of each example, as the float32 model outputs them."""
  return np.array([table[row] for row, _, _ in split], np.float32)


def _brier(probabilities, y_true):
  """Mean over examples of sum_k (p_k - onehot_k)^2."""
  return np.mean(np.sum((probabilities - np.eye(3)[y_true]) ** 2, axis=1))


def _examples(uri, split, **subgroups):
  """`split` as an Examples artifact; `subgroups`: a list of values per feature key."""
  return fake_cxr_model.examples_artifact(
    uri,
    [
      fake_cxr_model.serialized_example(
        row, label, source, **{key: values[i] for key, values in subgroups.items()}
      )
      for i, (row, label, source) in enumerate(split)
    ],
  )


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
  root = tmp_path_factory.mktemp('evaluation')
  examples = _examples(
    str(root / 'examples'),
    TEST_SPLIT,
    view_position=VIEWS,
    age_band=['unknown'] * len(TEST_SPLIT),
  )
  models = {
    name: fake_cxr_model.model_artifact(str(root / f'model_{name}'), table, point)
    for name, table, point in (('good', GOOD_TABLE, GOOD_POINT), ('bad', BAD_TABLE, None))
  }
  return root, examples, models


def _evaluate(workspace, name, model, baseline=None, examples=None, **gate):
  root, default_examples, _ = workspace
  return fake_cxr_model.run_evaluator(
    str(root / name), examples or default_examples, model, baseline, **gate
  )


def _overall(evaluation_uri, name, class_id=None, macro=False, model_name=''):
  return results.load_metrics(evaluation_uri)[results.OVERALL][
    results.MetricId(name, class_id=class_id, macro=macro, model_name=model_name)
  ]


def test_classification_report_equals_sklearn_including_a_never_predicted_class():
  rng = np.random.default_rng(0)
  y_true = rng.integers(0, 3, 200)
  y_pred = np.where(rng.random(200) < 0.7, y_true, rng.integers(0, 2, 200))  # class 2: rarely
  y_pred[y_pred == 2] = 0
  report = classification_report.classification_report(
    sk_metrics.confusion_matrix(y_true, y_pred, labels=[0, 1, 2]), labels.CLASS_NAMES
  )
  expected = sk_metrics.classification_report(
    y_true, y_pred, labels=[0, 1, 2], output_dict=True, zero_division=0
  )
  for i, scores in enumerate(report.per_class):
    assert scores.precision.value == pytest.approx(expected[str(i)]['precision'])
    assert scores.recall.value == pytest.approx(expected[str(i)]['recall'])
    assert scores.f1 == pytest.approx(expected[str(i)]['f1-score'])
    assert scores.support == expected[str(i)]['support']
    # Specificity and NPV: recall and precision of "not class i".
    assert scores.specificity.value == pytest.approx(
      sk_metrics.recall_score(y_true != i, y_pred != i)
    )
    assert scores.npv.value == pytest.approx(sk_metrics.precision_score(y_true != i, y_pred != i))
    for proportion in (scores.precision, scores.recall, scores.specificity, scores.npv):
      if proportion.trials:  # (no trials: checked below)
        assert proportion.ci == pytest.approx(
          _scipy_wilson(proportion.successes, proportion.trials)
        )
  assert report.per_class[2].precision.value == 0.0 and report.per_class[2].recall.value == 0.0
  assert report.per_class[2].precision.ci == (0.0, 1.0)  # never predicted: no evidence
  for name, scores in (('macro avg', report.macro_avg), ('weighted avg', report.weighted_avg)):
    assert scores.precision == pytest.approx(expected[name]['precision'])
    assert scores.recall == pytest.approx(expected[name]['recall'])
    assert scores.f1 == pytest.approx(expected[name]['f1-score'])
  assert report.accuracy.value == pytest.approx(expected['accuracy'])
  assert report.accuracy.ci == pytest.approx(_scipy_wilson(np.sum(y_true == y_pred), 200))


def test_wilson_interval_equals_scipy_and_the_closed_form():
  z = stats.norm.ppf(0.975)
  for n in (1, 2, 3, 5, 16, 20, 50, 70, 312, 1000):
    for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
      lower, upper = classification_report.wilson_interval(k, n)
      assert (lower, upper) == pytest.approx(_scipy_wilson(k, n), abs=1e-12)
      p = k / n  # Wilson (1927): (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)
      centre, half = p + z * z / (2 * n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
      assert (lower, upper) == pytest.approx(
        ((centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)), abs=1e-9
      )
  assert classification_report.wilson_interval(5, 5).lower == pytest.approx(0.5655, abs=1e-4)
  assert classification_report.wilson_interval(297, 312) == pytest.approx(
    (0.9222, 0.9707), abs=1e-4
  )
  assert classification_report.wilson_interval(0, 0) == (0.0, 1.0)
  with pytest.raises(ValueError, match='whole counts'):
    classification_report.wilson_interval(2.5, 4)


def test_confusion_matrix_rejects_labels_outside_the_classes():
  with pytest.raises(ValueError, match=r'actual=3, predicted=0.*outside the 3 classes'):
    classification_report.confusion_matrix([(0, 0, 2.0), (3, 0, 1.0)], 3)


def test_gate_settings_defaults_round_trip_and_bad_values():
  assert Gate() == Gate(
    min_accuracy=0.8, min_covid_recall=0.8, max_accuracy_drop=0.0, gate_on='lower', max_ece=None
  )
  gate = Gate(min_accuracy=0.7, gate_on='point')
  assert Gate.from_config(gate.to_config()) == gate
  with pytest.raises(ValueError, match='min_covid_recall must be within'):
    Gate(min_covid_recall=80)
  with pytest.raises(ValueError, match="gate_on must be one of lower, point, got 'median'"):
    Gate(gate_on='median')
  with pytest.raises(ValueError, match='max_ece must be within'):
    Gate(max_ece=-0.1)


def _run_options(*flags):
  args = cli.build_parser().parse_args(['run', '--data', 'd', '--output', 'o', *flags])
  return cli.run_options_from_args(args)


def test_cli_gate_flags_make_the_gate():
  assert _run_options().gate == Gate()
  assert _run_options('--gate-on', 'point', '--min-covid-recall', '0.9').gate == Gate(
    min_covid_recall=0.9, gate_on='point'
  )
  assert _run_options('--max-ece', '0.05').gate == Gate(max_ece=0.05)
  with pytest.raises(ValueError, match='min_accuracy must be within'):
    _run_options('--min-accuracy', '80')


def test_gate_metrics_equal_sklearn_and_a_good_model_is_blessed(workspace):
  _, _, models = workspace
  evaluation_uri, blessing = _evaluate(
    workspace,
    'good',
    models['good'],
    min_accuracy=0.8,
    min_covid_recall=0.8,
    max_accuracy_drop=0.0,
    gate_on='point',
    max_ece=0.5,
  )
  y_true, y_pred = np.array(_true_labels()), np.array(_argmax_predictions(GOOD_TABLE))
  assert len(set(y_pred)) == labels.NUM_CLASSES
  expected = sk_metrics.classification_report(y_true, y_pred, output_dict=True, zero_division=0)
  for i in range(labels.NUM_CLASSES):
    assert _overall(evaluation_uri, 'argmax_precision', i) == pytest.approx(
      expected[str(i)]['precision']
    )
    assert _overall(evaluation_uri, 'argmax_recall', i) == pytest.approx(expected[str(i)]['recall'])
    assert _overall(evaluation_uri, 'argmax_f1', i) == pytest.approx(expected[str(i)]['f1-score'])
    assert _overall(evaluation_uri, 'argmax_support', i) == expected[str(i)]['support']
    positive, predicted = y_true == i, y_pred == i
    counts = {  # (successes, trials) of each proportion
      'argmax_precision': (np.sum(positive & predicted), np.sum(predicted)),
      'argmax_recall': (np.sum(positive & predicted), np.sum(positive)),
      'argmax_specificity': (np.sum(~positive & ~predicted), np.sum(~positive)),
      'argmax_npv': (np.sum(~positive & ~predicted), np.sum(~predicted)),
    }
    assert _overall(evaluation_uri, 'argmax_specificity', i) == pytest.approx(
      sk_metrics.recall_score(~positive, ~predicted)
    )
    assert _overall(evaluation_uri, 'argmax_npv', i) == pytest.approx(
      sk_metrics.precision_score(~positive, ~predicted)
    )
    for name, (k, n) in counts.items():
      assert (
        _overall(evaluation_uri, name + '_lower95', i),
        _overall(evaluation_uri, name + '_upper95', i),
      ) == pytest.approx(_scipy_wilson(k, n))
    scores = np.array([GOOD_TABLE[row][i] for row, _, _ in TEST_SPLIT])
    assert _overall(evaluation_uri, 'auc', i) == pytest.approx(
      sk_metrics.roc_auc_score(np.equal(y_true, i), scores), abs=1e-3
    )
  assert _overall(evaluation_uri, 'argmax_f1', macro=True) == pytest.approx(
    expected['macro avg']['f1-score']
  )
  assert _overall(evaluation_uri, 'argmax_accuracy') == pytest.approx(expected['accuracy'])
  assert (
    _overall(evaluation_uri, 'argmax_accuracy_lower95'),
    _overall(evaluation_uri, 'argmax_accuracy_upper95'),
  ) == pytest.approx(_scipy_wilson(np.sum(y_true == y_pred), len(y_true)))
  np.testing.assert_array_equal(
    results.load_confusion_matrix(evaluation_uri), sk_metrics.confusion_matrix(y_true, y_pred)
  )
  # COVID counts at every grid threshold, `P(COVID) > threshold` on the float32 predictions, as
  # scikit-learn counts them (row 4's 0.30004 is above 0.3: a histogram would put it below).
  counts = results.load_threshold_counts(evaluation_uri, COVID)
  np.testing.assert_allclose(counts.thresholds, operating_point.GRID, rtol=0, atol=5e-7)
  covid_scores = np.float32([GOOD_TABLE[row][COVID] for row, _, _ in TEST_SPLIT]).astype(float)
  for i, threshold in enumerate(operating_point.GRID):
    (tn, fp), (fn, tp) = sk_metrics.confusion_matrix(
      y_true == COVID, covid_scores > threshold, labels=[False, True]
    )
    assert (
      counts.true_positives[i],
      counts.false_positives[i],
      counts.true_negatives[i],
      counts.false_negatives[i],
    ) == (tp, fp, tn, fn), threshold
  # The report's test figures at the stored operating point: 5 of 6 COVID images above 0.3, and
  # 3 of 12 others (rows 3 and 4).
  figures = operating_point_figures.load_operating_point(
    models['good'].uri, evaluation_uri, candidate=''
  )
  (tn, fp), (fn, tp) = sk_metrics.confusion_matrix(y_true == COVID, covid_scores > 0.3)
  assert (tp, fn, tn, fp) == (5, 1, 9, 3)
  assert figures.point == GOOD_POINT
  assert figures.sensitivity.value == pytest.approx(5 / 6)
  assert figures.sensitivity.ci == pytest.approx(_scipy_wilson(tp, tp + fn))
  assert figures.specificity.value == pytest.approx(9 / 12)
  assert figures.specificity.ci == pytest.approx(_scipy_wilson(tn, tn + fp))
  probabilities = _probabilities(GOOD_TABLE)
  ece = calibration.top_label_ece(probabilities, y_true)
  assert ece > 0.05  # not a trivial 0
  assert _overall(evaluation_uri, 'top_label_ece') == pytest.approx(ece, abs=1e-9)
  assert _overall(evaluation_uri, 'brier') == pytest.approx(_brier(probabilities, y_true), abs=1e-6)

  assert blessing.get_int_custom_property('blessed') == 1
  assert os.path.exists(os.path.join(blessing.uri, 'BLESSED'))
  gate = {(c.metric.name, c.metric.class_id, c.kind): c for c in results.load_gate(evaluation_uri)}
  assert set(gate) == {
    ('argmax_accuracy', None, 'value'),
    ('argmax_recall', COVID, 'value'),
    ('top_label_ece', None, 'value'),
    ('argmax_accuracy_above_chance', None, 'value'),  # the masking audit's (lungs hidden)
  }  # no baseline: change threshold dropped
  assert report_gate.describe(gate[('top_label_ece', None, 'value')]) == (
    f'top-label ECE {ece:.2f} (no interval, 18 images): at or below 0.50'
  )
  assert all(c.passed for c in gate.values())
  recall = gate[('argmax_recall', COVID, 'value')]
  assert (recall.bound, recall.threshold, recall.images) == ('>= 0.8', 0.8, 6)
  assert recall.ci == pytest.approx(_scipy_wilson(5, 6))
  assert report_gate.describe(recall) == (
    'COVID recall 0.83 (95% CI 0.44–0.97, 6 images): at or above 0.80'
  )
  # Slices are reported, not gated: source B's COVID recall is 0.5 (1 of 2), with its interval.
  source_b = results.load_metrics(evaluation_uri)['source:B']
  assert source_b[results.MetricId('argmax_recall', class_id=COVID)] == pytest.approx(0.5)
  assert (
    source_b[results.MetricId('argmax_recall_lower95', class_id=COVID)],
    source_b[results.MetricId('argmax_recall_upper95', class_id=COVID)],
  ) == pytest.approx(_scipy_wilson(1, 2))
  in_b = np.array([source == 'B' for _, _, source in TEST_SPLIT])
  assert source_b[results.MetricId('top_label_ece')] == pytest.approx(
    calibration.top_label_ece(probabilities[in_b], y_true[in_b]), abs=1e-9
  )
  assert source_b[results.MetricId('brier')] == pytest.approx(
    _brier(probabilities[in_b], y_true[in_b]), abs=1e-6
  )
  # The subgroup slices, reported the same way; a missing value is the 'unknown' slice.
  y_pred = np.array(_argmax_predictions(GOOD_TABLE))
  metrics = results.load_metrics(evaluation_uri)
  for view in ('AP', 'PA'):
    in_view = np.array(VIEWS) == view
    sliced = metrics[f'view_position:{view}']
    assert sliced[results.MetricId('example_count')] == in_view.sum()
    assert sliced[results.MetricId('argmax_accuracy')] == pytest.approx(
      np.mean(y_pred[in_view] == y_true[in_view])
    )
  assert metrics['age_band:unknown'][results.MetricId('argmax_accuracy')] == pytest.approx(
    np.mean(y_pred == y_true)
  )
  assert not [name for name in metrics if name.startswith(('sex:', 'manufacturer:'))]


def test_perfect_recall_on_5_covid_images_is_not_blessed_by_default(workspace):
  root, _, models = workspace
  examples = _examples(str(root / 'small_covid_examples'), SMALL_COVID_SPLIT)
  evaluation_uri, blessing = _evaluate(workspace, 'small_covid', models['good'], examples=examples)
  assert blessing.get_int_custom_property('blessed') == 0
  gate = {c.metric: c for c in results.load_gate(evaluation_uri)}
  recall = gate[results.MetricId('argmax_recall_lower95', class_id=COVID)]
  assert not recall.passed and recall.on_lower_bound
  assert recall.value == 1.0 and recall.measured == pytest.approx(0.5655, abs=1e-4)
  assert report_gate.describe(recall) == (
    'COVID recall 1.00 (95% CI 0.57–1.00, 5 images): lower bound below 0.80'
  )
  accuracy = gate[results.MetricId('argmax_accuracy_lower95')]
  assert accuracy.passed and accuracy.images == 65
  assert accuracy.measured == pytest.approx(_scipy_wilson(65, 65)[0])
  assert report_gate.describe(accuracy) == (
    'accuracy 1.00 (95% CI 0.94–1.00, 65 images): lower bound at or above 0.80'
  )

  _, blessing = _evaluate(
    workspace, 'small_covid_point', models['good'], examples=examples, gate_on='point'
  )
  assert blessing.get_int_custom_property('blessed') == 1


def test_model_under_covid_recall_threshold_is_not_blessed_and_not_pushed(workspace, tmp_path):
  root, _, models = workspace
  evaluation_uri, blessing = _evaluate(
    workspace,
    'bad',
    models['bad'],
    min_accuracy=0.7,
    min_covid_recall=0.8,
    max_accuracy_drop=0.0,
    gate_on='point',
    max_ece=0.05,
  )
  assert blessing.get_int_custom_property('blessed') == 0
  assert os.path.exists(os.path.join(blessing.uri, 'NOT_BLESSED'))
  gate = {(c.metric.name, c.metric.class_id): c for c in results.load_gate(evaluation_uri)}
  assert gate[('argmax_accuracy', None)].passed  # 14/18 >= 0.7
  assert gate[('argmax_recall', COVID)].measured == pytest.approx(0.5)
  assert not gate[('argmax_recall', COVID)].passed
  ece = calibration.top_label_ece(_probabilities(BAD_TABLE), np.array(_true_labels()))
  ece_check = gate[('top_label_ece', None)]
  assert ece_check.measured == pytest.approx(ece, abs=1e-9) and ece > 0.05
  assert not ece_check.passed and ece_check.bound == '<= 0.05'
  assert report_gate.describe(ece_check) == (
    f'top-label ECE {ece:.2f} (no interval, 18 images): above 0.05'
  )

  pushed_model = standard_artifacts.PushedModel()
  pushed_model.uri = str(tmp_path / 'pushed_model')
  serving_dir = str(tmp_path / 'serving')
  pusher_executor.Executor().Do(
    {'model': [models['bad']], 'model_blessing': [blessing]},
    {'pushed_model': [pushed_model]},
    {
      'push_destination': proto_utils.proto_to_json(
        pusher_pb2.PushDestination(
          filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=serving_dir)
        )
      )
    },
  )
  assert pushed_model.get_int_custom_property('pushed') == 0
  assert versioned_dir.versions(serving_dir) == []


def test_model_worse_than_the_blessed_baseline_is_not_blessed(workspace):
  _, _, models = workspace
  evaluation_uri, blessing = _evaluate(
    workspace,
    'regression',
    models['bad'],
    baseline=models['good'],
    min_accuracy=0.7,
    min_covid_recall=0.4,
    max_accuracy_drop=0.0,
    gate_on='point',
  )
  assert blessing.get_int_custom_property('blessed') == 0
  assert blessing.get_string_custom_property('baseline_model') == models['good'].uri
  candidate, baseline = results.model_names(results.load_eval_config(evaluation_uri))
  assert baseline is not None
  assert _overall(evaluation_uri, 'argmax_accuracy', model_name=baseline) == (
    pytest.approx(15 / 18)
  )
  failed = [c for c in results.load_gate(evaluation_uri) if not c.passed]
  assert [(c.metric.name, c.kind, c.metric.model_name) for c in failed] == [
    ('argmax_accuracy', 'change', candidate)
  ]
  assert failed[0].measured == pytest.approx(14 / 18 - 15 / 18, abs=1e-6)
  assert failed[0].ci is None  # a point comparison (see eval_config's docstring)
  assert report_gate.describe(failed[0]) == 'accuracy change vs baseline -0.0556: below +0.00'
