"""The model card of a pushed version: written with the model and only then, its figures those of a
real evaluation (TFX's Evaluator on a fake SavedModel, tests/fake_cxr_model.py) checked against
scikit-learn and scipy, its Markdown saying what its JSON says, dataset strings escaped."""

import collections
from html import parser as html_parser
import json
import os

import markdown
import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as sk_metrics
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components import calibration
from components import class_weights
from components import hparams as hparams_lib
from components import image_spec
from components import labels
from components import ood
from components import operating_point
from components import training_report
from components.ingestion import manifest
from components.ingestion.component import IngestReport
from components.pusher import executor as pusher_executor
from components.pusher import model_card
from components.pusher import versioned_dir
import fake_cxr_model

COVID, NORMAL, VIRAL = 0, 1, 2
TABLE = [
  [0.8, 0.1, 0.1],
  [0.1, 0.7, 0.2],
  [0.2, 0.2, 0.6],
  [0.45, 0.4, 0.15],
]
POINT = operating_point.OperatingPoint('COVID', 0.3, 0.95, 4, 1, 9, 2)
OOD_RECORD = ood.OodRecord(
  'energy',
  -3.25,
  0.99,
  1.0,
  {'energy': 0.9},
  {'threshold': 7.5, 'auroc': 1.0, 'eval_accept_rate': 1.0},
  76,
  12,
  64,
  note='small',
)
HOSTILE = '<img src=x onerror=alert(1)>|x*_'  # a source folder's name
# (table row, label, source) of the test split.
TEST_SPLIT = (
  [(0, COVID, 'A')] * 3
  + [(3, COVID, 'A'), (1, COVID, HOSTILE), (0, COVID, HOSTILE)]
  + [(1, NORMAL, 'A')] * 4
  + [(3, NORMAL, HOSTILE), (1, NORMAL, HOSTILE)]
  + [(2, VIRAL, 'A')] * 5
  + [(3, VIRAL, HOSTILE)]
)
AGE_BANDS = ['0-9' if i % 2 else '60-69' for i in range(len(TEST_SPLIT))]  # a subgroup slice
# Ingested images of the other splits: (split, class, source, images).
OTHER_SPLITS = [
  ('train', 'COVID', 'A', 20),
  ('train', 'COVID', HOSTILE, 7),
  ('train', 'NORMAL', 'A', 25),
  ('train', 'VIRAL PNEUMONIA', 'A', 24),
  ('eval', 'COVID', 'A', 3),
  ('eval', 'NORMAL', 'A', 3),
  ('eval', 'VIRAL PNEUMONIA', HOSTILE, 3),
]
# The Trainer's record of OTHER_SPLITS' train split (27 COVID, 25 NORMAL, 24 VIRAL PNEUMONIA).
TRAIN_CLASSES = class_weights.record((27, 25, 24), class_weights.compute('balanced', (27, 25, 24)))
HPARAMS = dict(
  image_spec.ImageSpec(size=64).to_config(),
  **hparams_lib.to_dict(hparams_lib.HParams(weights='none', dense_units=(32, 16))),
)


def _wilson(k, n):
  ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method='wilson')
  return pytest.approx((ci.low, ci.high), abs=1e-9)


def _artifact(artifact, uri, artifact_id):
  artifact.uri = str(uri)
  artifact.id = artifact_id
  return artifact


def _ingest_report(uri):
  """An IngestReport whose summary.json is manifest.summarize's of these images."""
  rows = [
    {'status': 'ingested', 'split': 'test', 'label_name': labels.CLASS_NAMES[label], 'source': s}
    for _, label, s in TEST_SPLIT
  ]
  rows += [
    {'status': 'ingested', 'split': split, 'label_name': name, 'source': source}
    for split, name, source, n in OTHER_SPLITS
    for _ in range(n)
  ]
  summary = manifest.summarize(
    [dict(row, reason=None) for row in rows], '/data/cxr', [2], 0.1, allow_confounded_sources=True
  )
  os.makedirs(uri)
  with open(os.path.join(uri, manifest.SUMMARY_FILE), 'w') as f:
    json.dump(summary, f)
  return _artifact(IngestReport(), uri, 5)


def _model_run(uri, calibration_record):
  training_report.write_report(
    str(uri),
    {},
    best_epoch=7,
    hparams=HPARAMS,
    train_examples=76,
    **TRAIN_CLASSES,
    keras='tf_keras 2.16.0',
  )
  training_report.write_calibration(str(uri), calibration_record, b'png')
  ood.write(OOD_RECORD, os.path.join(str(uri), ood.FILE))
  return _artifact(standard_artifacts.ModelRun(), uri, 6)


def _push(root, inputs, serving_dir):
  pushed_model = _artifact(standard_artifacts.PushedModel(), root / 'pushed_model', 9)
  pusher_executor.Executor().Do(
    inputs,
    {'pushed_model': [pushed_model]},
    {
      'push_destination': proto_utils.proto_to_json(
        pusher_pb2.PushDestination(
          filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=serving_dir)
        )
      )
    },
  )
  return pushed_model


@pytest.fixture(scope='module')
def pushed(tmp_path_factory):
  """A model evaluated by TFX's Evaluator, blessed and pushed with every card input."""
  root = tmp_path_factory.mktemp('model_card')
  examples = fake_cxr_model.examples_artifact(
    str(root / 'examples'),
    [
      fake_cxr_model.serialized_example(row, label, source, age_band=AGE_BANDS[i])
      for i, (row, label, source) in enumerate(TEST_SPLIT)
    ],
  )
  examples.id, examples.span = 3, 2
  model = fake_cxr_model.model_artifact(str(root / 'model'), TABLE, POINT)
  model.id = 1
  # A gate this model passes (lower bounds: accuracy 0.608, COVID recall 0.436).
  evaluation_uri, blessing = fake_cxr_model.run_evaluator(
    str(root), examples, model, min_accuracy=0.6, min_covid_recall=0.4
  )
  blessing.id = 4
  logits = np.log(np.array([TABLE[row] for row, _, _ in TEST_SPLIT]))
  record = calibration.calibration_record(logits, [label for _, label, _ in TEST_SPLIT], 1.5)
  inputs = {
    'model': [model],
    'model_blessing': [blessing],
    'evaluation': [_artifact(standard_artifacts.ModelEvaluation(), evaluation_uri, 2)],
    'examples': [examples],
    'ingest_report': [_ingest_report(str(root / 'ingest_report'))],
    'model_run': [_model_run(root / 'model_run', record)],
  }
  serving_dir = str(root / 'serving')
  pushed_model = _push(root, inputs, serving_dir)
  [version] = versioned_dir.versions(serving_dir)
  version_dir = os.path.join(serving_dir, str(version))
  with open(os.path.join(version_dir, model_card.CARD_JSON)) as f:
    card = json.load(f)
  with open(os.path.join(version_dir, model_card.CARD_MARKDOWN)) as f:
    card_md = f.read()
  return dict(
    root=root,
    inputs=inputs,
    serving_dir=serving_dir,
    version=version,
    version_dir=version_dir,
    pushed_model=pushed_model,
    card=card,
    card_md=card_md,
    record=record,
  )


def _metrics(card):
  return {(m['type'], m['slice']): m for m in card['quantitative_analysis']['performance_metrics']}


def _check_proportion(metric, k, n):
  assert metric['value'] == pytest.approx(k / n)
  assert metric['images'] == n
  ci = metric['confidence_interval']
  assert (ci['lower_bound'], ci['upper_bound']) == _wilson(k, n)


def test_the_version_folder_holds_the_model_and_its_card(pushed):
  files = sorted(os.listdir(pushed['version_dir']))
  assert {model_card.CARD_JSON, model_card.CARD_MARKDOWN} <= set(files)
  assert (
    pushed['pushed_model'].get_string_custom_property('pushed_destination')
    == (pushed['version_dir'])
  )
  details = pushed['card']['model_details']
  assert details['version']['name'] == str(pushed['version'])
  assert details['path'] == pushed['version_dir']
  assert details['blessing'] == {'blessed': True, 'current_model_id': 1}
  lineage = {entry['role']: entry for entry in details['lineage']}
  for role, key in (
    ('model', 'model'),
    ('evaluation', 'evaluation'),
    ('examples', 'examples'),
    ('ingest_report', 'ingest_report'),
    ('model_run', 'model_run'),
  ):
    artifact = pushed['inputs'][key][0]
    assert lineage[role] == {
      'role': role,
      'type': artifact.type_name,
      'id': artifact.id,
      'uri': artifact.uri,
    }
  assert lineage['blessing']['id'] == 4
  assert sorted(pushed['card']) == [
    'considerations',
    'model_details',
    'model_parameters',
    'quantitative_analysis',
    'schema_version',
  ]


def test_card_figures_are_the_evaluation_figures(pushed):
  metrics = _metrics(pushed['card'])
  y_true = np.array([label for _, label, _ in TEST_SPLIT])
  y_pred = np.array([int(np.argmax(TABLE[row])) for row, _, _ in TEST_SPLIT])
  _check_proportion(metrics[('accuracy', 'Overall')], np.sum(y_true == y_pred), len(y_true))
  matrix = sk_metrics.confusion_matrix(y_true, y_pred, labels=[0, 1, 2])
  f1 = sk_metrics.f1_score(y_true, y_pred, average=None, labels=[0, 1, 2])
  for i, name in enumerate(labels.CLASS_NAMES):
    tp = matrix[i, i]
    fn, fp = matrix[i].sum() - tp, matrix[:, i].sum() - tp
    tn = matrix.sum() - tp - fn - fp
    _check_proportion(metrics[(f'precision ({name})', 'Overall')], tp, tp + fp)
    _check_proportion(metrics[(f'recall ({name})', 'Overall')], tp, tp + fn)
    _check_proportion(metrics[(f'specificity ({name})', 'Overall')], tn, tn + fp)
    _check_proportion(metrics[(f'npv ({name})', 'Overall')], tn, tn + fn)
    assert metrics[(f'f1 ({name})', 'Overall')]['value'] == pytest.approx(f1[i])
    assert metrics[(f'support ({name})', 'Overall')]['value'] == np.sum(y_true == i)
    assert isinstance(metrics[(f'support ({name})', 'Overall')]['value'], int)
  probabilities = np.array([TABLE[row] for row, _, _ in TEST_SPLIT], np.float32)
  auc = sk_metrics.roc_auc_score(y_true == COVID, probabilities[:, COVID])
  assert metrics[('roc_auc (COVID)', 'Overall')]['value'] == pytest.approx(auc, abs=1e-3)
  assert metrics[('top_label_ece', 'Overall')]['value'] == pytest.approx(
    calibration.top_label_ece(probabilities, y_true), abs=1e-6
  )
  # The operating point: P(COVID) > 0.3 on the test split.
  positive = probabilities[:, COVID].astype(float) > POINT.threshold
  (tn, fp), (fn, tp) = sk_metrics.confusion_matrix(y_true == COVID, positive)
  sensitivity = metrics[('sensitivity (COVID, operating point)', 'Overall')]
  _check_proportion(sensitivity, tp, tp + fn)
  assert sensitivity['threshold'] == POINT.threshold
  _check_proportion(metrics[('specificity (COVID, operating point)', 'Overall')], tn, tn + fp)
  # Per source: accuracy and COVID recall with the images behind them.
  for source in ('A', HOSTILE):
    in_source = np.array([s == source for _, _, s in TEST_SPLIT])
    _check_proportion(
      metrics[('accuracy', f'source:{source}')],
      np.sum((y_true == y_pred) & in_source),
      np.sum(in_source),
    )
    covid = in_source & (y_true == COVID)
    _check_proportion(
      metrics[('recall (COVID)', f'source:{source}')],
      np.sum(covid & (y_pred == COVID)),
      covid.sum(),
    )
  # Per subgroup, the same figures.
  for band in ('0-9', '60-69'):
    in_band = np.array(AGE_BANDS) == band
    _check_proportion(
      metrics[('accuracy', f'age_band:{band}')],
      np.sum((y_true == y_pred) & in_band),
      np.sum(in_band),
    )
  gate = {(c['metric'], c['class']): c for c in pushed['card']['quantitative_analysis']['gate']}
  recall_check = gate[('argmax_recall_lower95', 'COVID')]
  assert recall_check['images'] == np.sum(y_true == COVID)
  assert recall_check['value'] == pytest.approx(metrics[('recall (COVID)', 'Overall')]['value'])
  assert recall_check['passed'] and gate[('argmax_accuracy_lower95', None)]['passed']
  # The masking audit: the fake model reads the lungs, so hidden it answers uniform (COVID).
  audit = pushed['card']['quantitative_analysis']['audit']
  assert audit['lungs_hidden_accuracy'] == pytest.approx(np.mean(y_true == COVID))
  assert audit['borders_hidden_accuracy'] == pytest.approx(np.mean(y_true == y_pred))
  assert audit['shortcut_suspected'] is False and audit['gated'] is True
  assert pushed['card']['quantitative_analysis']['ood'] == OOD_RECORD.to_json()


def test_card_holds_training_data_calibration_and_operating_point(pushed):
  parameters = pushed['card']['model_parameters']
  assert parameters['hyperparameters'] == HPARAMS
  assert parameters['weights']['backbone'] == 'none'
  assert parameters['training'] == {
    'best_epoch': 7,
    'train_examples': 76,
    'train_class_counts': {'COVID': 27, 'NORMAL': 25, 'VIRAL PNEUMONIA': 24},
    'class_weights': pytest.approx(
      {'COVID': 76 / 81, 'NORMAL': 76 / 75, 'VIRAL PNEUMONIA': 76 / 72}
    ),
    'keras': 'tf_keras 2.16.0',
  }
  assert parameters['hyperparameters']['class_weight'] == 'balanced'
  assert 'its first 300 layers frozen' in parameters['model_architecture']
  assert 'Dense(32, ReLU)' in parameters['model_architecture']
  assert (
    parameters['signatures']['serving_examples']['outputs']['probabilities'] == 'float32 [-1, 3]'
  )
  counts = collections.Counter((label, source) for _, label, source in TEST_SPLIT)
  data = {entry['name']: entry for entry in parameters['data']}
  assert data['test']['images'] == len(TEST_SPLIT)
  assert data['test']['spans'] == [2]
  for i, name in enumerate(labels.CLASS_NAMES):
    assert data['test']['classes'][name] == sum(n for (label, _), n in counts.items() if label == i)
    for source in ('A', HOSTILE):
      assert data['test']['sources'][source].get(name, 0) == counts[(i, source)]
  for split, name, source, n in OTHER_SPLITS:
    assert data[split]['sources'][source][name] == n
  analysis = pushed['card']['quantitative_analysis']
  assert analysis['calibration'] == pytest.approx(pushed['record'])
  assert analysis['operating_point'] == POINT.to_json()
  considerations = pushed['card']['considerations']
  kinds = [use_case['kind'] for use_case in considerations['use_cases']]
  assert kinds[0] == 'intended' and 'out_of_scope' in kinds
  limitations = ' '.join(item['description'] for item in considerations['limitations'])
  assert 'paediatric' in limitations
  assert f'Test split size: {len(TEST_SPLIT)} images, 6 of them COVID' in limitations


class _Cells(html_parser.HTMLParser):
  """The text of each table row's cells, and every start tag met."""

  def __init__(self):
    super().__init__()
    self.rows, self.tags, self.in_cell = [], [], False

  def handle_starttag(self, tag, attrs):
    self.tags.append(tag)
    if tag == 'tr':
      self.rows.append([])
    elif tag in ('td', 'th'):
      self.rows[-1].append('')
      self.in_cell = True

  def handle_endtag(self, tag):
    if tag in ('td', 'th'):
      self.in_cell = False

  def handle_data(self, data):
    if self.in_cell:
      self.rows[-1][-1] += data


def _rendered(card_md):
  cells = _Cells()
  cells.feed(markdown.markdown(card_md, extensions=['tables']))
  return cells


def test_markdown_says_what_the_json_says(pushed):
  assert (
    '- Training examples by class: COVID 27, NORMAL 25, VIRAL PNEUMONIA 24; class weights of the '
    'training loss: COVID 0.9383, NORMAL 1.0133, VIRAL PNEUMONIA 1.0556'
  ) in pushed['card_md']
  assert '| class_weight | "balanced" |' in pushed['card_md']
  rows = {tuple(row[:2]): row for row in _rendered(pushed['card_md']).rows if len(row) == 6}
  for metric in pushed['card']['quantitative_analysis']['performance_metrics']:
    row = rows[(metric['type'], metric['slice'])]
    assert float(row[2]) == pytest.approx(metric['value'], abs=5e-5)
    ci = metric.get('confidence_interval')
    if ci:
      lower, upper = map(float, row[3].split('–'))
      assert (lower, upper) == pytest.approx((ci['lower_bound'], ci['upper_bound']), abs=5e-4)
    else:
      assert row[3] == 'n/a'
    assert row[4] == str(metric.get('images', ''))
    assert row[5] == str(metric.get('threshold', ''))
  assert len(rows) == len(pushed['card']['quantitative_analysis']['performance_metrics']) + 1
  audit = pushed['card']['quantitative_analysis']['audit']
  assert f'| lung fields hidden | {audit["lungs_hidden_accuracy"]:.4f} |' in pushed['card_md']
  assert (
    'Shortcut suspected: no (rule: accuracy with the lung fields hidden above chance'
    in (pushed['card_md'])
  )
  # The abstention rule with both thresholds of OOD_RECORD (its JSON is the record's).
  assert (
    '`in_distribution` is false (not classified) when the energy score exceeds -3.25 or the '
    "appearance score (Mahalanobis distance of the image's greyscale thumbnail to the training "
    'images) exceeds 7.5; together they accept 1.0000 of the 12 eval images (target 0.99).'
  ) in ' '.join(pushed['card_md'].split())


def test_dataset_strings_render_as_text(pushed):
  rendered = _rendered(pushed['card_md'])
  assert 'img' not in rendered.tags
  assert ['accuracy', f'source:{HOSTILE}'] in [row[:2] for row in rendered.rows]
  source_rows = [row for row in rendered.rows if row and row[0] == HOSTILE]
  assert len(source_rows) == 3  # one per split, each with its class counts
  assert all(len(row) == 1 + labels.NUM_CLASSES for row in source_rows)


def test_a_rerun_of_the_served_model_keeps_its_version_and_card(pushed):
  before = {
    name: os.stat(os.path.join(pushed['version_dir'], name)).st_mtime_ns
    for name in (model_card.CARD_JSON, model_card.CARD_MARKDOWN)
  }
  rerun = _push(pushed['root'], pushed['inputs'], pushed['serving_dir'])
  assert versioned_dir.versions(pushed['serving_dir']) == [pushed['version']]
  assert rerun.get_string_custom_property('pushed_version') == str(pushed['version'])
  for name, mtime in before.items():
    assert os.stat(os.path.join(pushed['version_dir'], name)).st_mtime_ns == mtime


def test_a_model_that_is_not_blessed_gets_no_version_and_no_card(pushed, tmp_path):
  blessing = pushed['inputs']['model_blessing'][0]
  not_blessed = _artifact(standard_artifacts.ModelBlessing(), blessing.uri, blessing.id)
  not_blessed.set_int_custom_property('blessed', 0)
  serving_dir = str(tmp_path / 'serving')
  not_pushed = _push(tmp_path, dict(pushed['inputs'], model_blessing=[not_blessed]), serving_dir)
  assert not_pushed.get_int_custom_property('pushed') == 0
  assert not os.path.exists(serving_dir)
  written = [name for _, _, files in os.walk(tmp_path) for name in files]
  assert model_card.CARD_JSON not in written and model_card.CARD_MARKDOWN not in written


def test_a_card_that_cannot_be_built_leaves_no_version(pushed, tmp_path, monkeypatch):
  def fail(*args, **kwargs):
    raise OSError('evaluation unreadable')

  monkeypatch.setattr(model_card, 'build', fail)
  serving_dir = str(tmp_path / 'serving')
  with pytest.raises(OSError, match='evaluation unreadable'):
    _push(tmp_path, pushed['inputs'], serving_dir)
  assert os.listdir(serving_dir) == ['.lock']
