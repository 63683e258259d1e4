"""The Evaluator gate: argmax per-class metrics equal scikit-learn's, and blessing decisions.

Runs TFX's Evaluator executor (TFMA, Beam in memory) on a tiny fake SavedModel with the
project's `serving_examples` signature and raw tf.Examples.
"""
import os

import numpy as np
import pytest
from sklearn import metrics as sk_metrics
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

import fake_cxr_model
from components import labels
from components.evaluation import classification_report
from components.evaluation import eval_config as eval_config_lib
from components.evaluation import results
from components.pusher import executor as pusher_executor
from components.pusher import versioned_dir

COVID, NORMAL, VIRAL = 0, 1, 2
GOOD_TABLE = [[0.8, 0.1, 0.1], [0.1, 0.7, 0.2], [0.2, 0.2, 0.6], [0.45, 0.4, 0.15],
              [0.3, 0.36, 0.34]]
# Row 3 turns NORMAL: half of the COVID examples are missed (recall 0.5, accuracy 14/18).
BAD_TABLE = GOOD_TABLE[:3] + [[0.3, 0.6, 0.1]] + GOOD_TABLE[4:]
# (table row, label, source): the good model gets 5 of 6 right in every class; source B holds
# 2 COVID examples, one missed (COVID recall 0.5 on that slice).
TEST_SPLIT = ([(0, COVID, 'A'), (0, COVID, 'A'), (0, COVID, 'B'), (3, COVID, 'A'), (3, COVID, 'A'),
               (1, COVID, 'B')]
              + [(1, NORMAL, 'A')] * 4 + [(4, NORMAL, 'A'), (3, NORMAL, 'A')]
              + [(2, VIRAL, 'A')] * 5 + [(4, VIRAL, 'A')])


def _argmax_predictions(table):
  return [int(np.argmax(table[row])) for row, _, _ in TEST_SPLIT]


def _true_labels():
  return [label for _, label, _ in TEST_SPLIT]


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
  root = tmp_path_factory.mktemp('evaluation')
  examples = fake_cxr_model.examples_artifact(str(root / 'examples'), [
      fake_cxr_model.serialized_example(row, label, source) for row, label, source in TEST_SPLIT])
  models = {name: fake_cxr_model.model_artifact(str(root / f'model_{name}'), table)
            for name, table in (('good', GOOD_TABLE), ('bad', BAD_TABLE))}
  return root, examples, models


def _evaluate(workspace, name, model, baseline=None, **gate):
  root, examples, _ = workspace
  return fake_cxr_model.run_evaluator(str(root / name), examples, model, baseline, **gate)


def _overall(evaluation_uri, name, class_id=None, macro=False, model_name=''):
  return results.load_metrics(evaluation_uri)[results.OVERALL][
      results.MetricId(name, class_id=class_id, macro=macro, model_name=model_name)]


def test_classification_report_equals_sklearn_including_a_never_predicted_class():
  rng = np.random.default_rng(0)
  y_true = rng.integers(0, 3, 200)
  y_pred = np.where(rng.random(200) < 0.7, y_true, rng.integers(0, 2, 200))  # class 2: rarely
  y_pred[y_pred == 2] = 0
  report = classification_report.classification_report(
      sk_metrics.confusion_matrix(y_true, y_pred, labels=[0, 1, 2]), labels.CLASS_NAMES)
  expected = sk_metrics.classification_report(y_true, y_pred, labels=[0, 1, 2], output_dict=True,
                                              zero_division=0)
  for i, scores in enumerate(report.per_class):
    assert scores.precision == pytest.approx(expected[str(i)]['precision'])
    assert scores.recall == pytest.approx(expected[str(i)]['recall'])
    assert scores.f1 == pytest.approx(expected[str(i)]['f1-score'])
    assert scores.support == expected[str(i)]['support']
  assert report.per_class[2].precision == 0.0 and report.per_class[2].recall == 0.0
  for name, scores in (('macro avg', report.macro_avg), ('weighted avg', report.weighted_avg)):
    assert scores.precision == pytest.approx(expected[name]['precision'])
    assert scores.recall == pytest.approx(expected[name]['recall'])
    assert scores.f1 == pytest.approx(expected[name]['f1-score'])
  assert report.accuracy == pytest.approx(expected['accuracy'])


def test_confusion_matrix_rejects_labels_outside_the_classes():
  with pytest.raises(ValueError, match=r'actual=3, predicted=0.*outside the 3 classes'):
    classification_report.confusion_matrix([(0, 0, 2.0), (3, 0, 1.0)], 3)


def test_eval_config_rejects_thresholds_outside_0_1():
  with pytest.raises(ValueError, match='min_covid_recall must be within'):
    eval_config_lib.make_eval_config(min_covid_recall=80)


def test_gate_metrics_equal_sklearn_and_a_good_model_is_blessed(workspace):
  _, _, models = workspace
  evaluation_uri, blessing = _evaluate(workspace, 'good', models['good'], min_accuracy=0.8,
                                       min_covid_recall=0.8, max_accuracy_drop=0.0)
  y_true, y_pred = _true_labels(), _argmax_predictions(GOOD_TABLE)
  assert len(set(y_pred)) == labels.NUM_CLASSES
  expected = sk_metrics.classification_report(y_true, y_pred, output_dict=True, zero_division=0)
  for i in range(labels.NUM_CLASSES):
    assert _overall(evaluation_uri, 'argmax_precision', i) == pytest.approx(
        expected[str(i)]['precision'])
    assert _overall(evaluation_uri, 'argmax_recall', i) == pytest.approx(expected[str(i)]['recall'])
    assert _overall(evaluation_uri, 'argmax_f1', i) == pytest.approx(expected[str(i)]['f1-score'])
    scores = np.array([GOOD_TABLE[row][i] for row, _, _ in TEST_SPLIT])
    assert _overall(evaluation_uri, 'auc', i) == pytest.approx(
        sk_metrics.roc_auc_score(np.equal(y_true, i), scores), abs=1e-3)
  assert _overall(evaluation_uri, 'argmax_f1', macro=True) == pytest.approx(
      expected['macro avg']['f1-score'])
  assert _overall(evaluation_uri, 'sparse_categorical_accuracy') == pytest.approx(
      expected['accuracy'])
  np.testing.assert_array_equal(results.load_confusion_matrix(evaluation_uri),
                                sk_metrics.confusion_matrix(y_true, y_pred))

  assert blessing.get_int_custom_property('blessed') == 1
  assert os.path.exists(os.path.join(blessing.uri, 'BLESSED'))
  gate = {(c.metric.name, c.metric.class_id, c.kind): c for c in results.load_gate(evaluation_uri)}
  assert set(gate) == {('sparse_categorical_accuracy', None, 'value'),
                       ('argmax_recall', COVID, 'value')}  # no baseline: change threshold dropped
  assert all(c.passed for c in gate.values())
  assert gate[('argmax_recall', COVID, 'value')].bound == '>= 0.8'
  # Slices are reported, not gated: source B's COVID recall is 0.5.
  source_b = results.load_metrics(evaluation_uri)['source:B']
  assert source_b[results.MetricId('argmax_recall', class_id=COVID)] == pytest.approx(0.5)


def test_model_under_covid_recall_threshold_is_not_blessed_and_not_pushed(workspace, tmp_path):
  root, _, models = workspace
  evaluation_uri, blessing = _evaluate(workspace, 'bad', models['bad'], min_accuracy=0.7,
                                       min_covid_recall=0.8, max_accuracy_drop=0.0)
  assert blessing.get_int_custom_property('blessed') == 0
  assert os.path.exists(os.path.join(blessing.uri, 'NOT_BLESSED'))
  gate = {(c.metric.name, c.metric.class_id): c for c in results.load_gate(evaluation_uri)}
  assert gate[('sparse_categorical_accuracy', None)].passed  # 14/18 >= 0.7
  assert gate[('argmax_recall', COVID)].measured == pytest.approx(0.5)
  assert not gate[('argmax_recall', COVID)].passed

  pushed_model = standard_artifacts.PushedModel()
  pushed_model.uri = str(tmp_path / 'pushed_model')
  serving_dir = str(tmp_path / 'serving')
  pusher_executor.Executor().Do(
      {'model': [models['bad']], 'model_blessing': [blessing]}, {'pushed_model': [pushed_model]},
      {'push_destination': proto_utils.proto_to_json(pusher_pb2.PushDestination(
          filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=serving_dir)))})
  assert pushed_model.get_int_custom_property('pushed') == 0
  assert versioned_dir.versions(serving_dir) == []


def test_model_worse_than_the_blessed_baseline_is_not_blessed(workspace):
  _, _, models = workspace
  evaluation_uri, blessing = _evaluate(
      workspace, 'regression', models['bad'], baseline=models['good'], min_accuracy=0.7,
      min_covid_recall=0.4, max_accuracy_drop=0.0)
  assert blessing.get_int_custom_property('blessed') == 0
  assert blessing.get_string_custom_property('baseline_model') == models['good'].uri
  candidate, baseline = results.model_names(results.load_eval_config(evaluation_uri))
  assert baseline is not None
  assert _overall(evaluation_uri, 'sparse_categorical_accuracy', model_name=baseline) == (
      pytest.approx(15 / 18))
  failed = [c for c in results.load_gate(evaluation_uri) if not c.passed]
  assert [(c.metric.name, c.kind, c.metric.model_name) for c in failed] == [
      ('sparse_categorical_accuracy', 'change', candidate)]
  assert failed[0].measured == pytest.approx(14 / 18 - 15 / 18, abs=1e-6)
