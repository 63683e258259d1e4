"""`cxr report`: renders a run's report from ML Metadata and the Evaluator/Trainer outputs."""

import base64
import io
import json
import os
import re
import shutil
import subprocess

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
import numpy as np
from PIL import Image
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats
from sklearn import metrics as sk_metrics
from tfx import v1 as tfx

from components import audit
from components import calibration
from components import labels
from components import markdown_text
from components import ood
from components import operating_point
from components import training_report
from components.drift import result as drift_result
from components.ingestion import confounding
from components.ingestion import manifest
import fake_cxr_model
import html_page
from pipeline import report
from pipeline import report_calibration
from pipeline import report_data
from pipeline import report_drift
from pipeline import report_sources
from pipeline.output_layout import layout

# Source folders named by the data: one would be an HTML element if copied raw, the other splits a
# Markdown table cell. report.md must show both as text, report.html too.
A = '<img src=x onerror=alert(1)>'
B = 'B|C'
A_MD, B_MD = '&lt;img src=x onerror=alert(1)&gt;', 'B&#124;C'
CANDIDATE = [[0.8, 0.1, 0.1], [0.1, 0.7, 0.2], [0.2, 0.2, 0.6], [0.45, 0.4, 0.15]]
BASELINE = [[0.8, 0.1, 0.1], [0.1, 0.7, 0.2], [0.2, 0.2, 0.6], [0.3, 0.6, 0.1]]
# (table row, label, source): the candidate misses one NORMAL and one VIRAL PNEUMONIA image, the
# baseline also misses the two COVID images of row 3.
TEST_SPLIT = [
  (0, 0, A),
  (0, 0, A),
  (3, 0, B),
  (3, 0, B),
  (1, 1, A),
  (1, 1, A),
  (1, 1, A),
  (3, 1, A),
  (2, 2, A),
  (2, 2, A),
  (2, 2, B),
  (1, 2, B),
]
SEXES = ['F'] * 6 + ['M'] * 6  # a subgroup: the candidate gets 6 of 6 F and 4 of 6 M right
OOD_RECORD = ood.OodRecord(
  'mahalanobis',
  12.5,
  0.99,
  0.99,
  {'mahalanobis': 0.98, 'energy': 0.7},
  {'threshold': 9.75, 'auroc': 0.9975, 'eval_accept_rate': 0.995},
  300,
  200,
  64,
)
DRIFT = drift_result.DriftResult(  # span 2 drifted in width, trained on with --allow-drift
  span=2,
  previous_span=1,
  distances=(
    drift_result.Distance('width', 'Jensen-Shannon', 0.8125, 0.5, True),
    drift_result.Distance('format', 'L-infinity', 0.0, 0.1, False),
  ),
  allowed=True,
)
RUN_ID = '20260101-120000.000001'
SOURCE_TABLE = [[2, 4, 2], [2, 0, 2]]  # TEST_SPLIT's images: rows A, B; columns the classes
# The candidate's stored operating point; on TEST_SPLIT: 4 of 4 COVID images above 0.4, and one
# of the 8 others (row 3, P(COVID) 0.45).
POINT = operating_point.OperatingPoint('COVID', 0.4, 0.95, 19, 1, 35, 5)
# The Trainer's record (eval split) of the candidate: over-confident logits, scaled by T = 2.
EVAL_LOGITS = np.array([[4.0, 0.0, -2.0], [-1.0, 3.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, 3.0]])
EVAL_LABELS = np.array([0, 1, 2, 2])


def _wilson(k, n):
  ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method='wilson')
  return [ci.low, ci.high]


def _expected():
  """scikit-learn's report of the candidate on TEST_SPLIT, and the true and predicted labels."""
  y_true = np.array([label for _, label, _ in TEST_SPLIT])
  y_pred = np.array([int(np.argmax(CANDIDATE[row])) for row, _, _ in TEST_SPLIT])
  return (
    sk_metrics.classification_report(y_true, y_pred, output_dict=True, zero_division=0),
    y_true,
    y_pred,
  )


def _ingested_path(i):
  _, label, source = TEST_SPLIT[i]
  return f'{source}/{labels.CLASS_NAMES[label]}/{i}.png'


# The files ingestion did not ingest, as its manifest records them (paths relative to the data
# root): more quarantined files than the report lists, a duplicate of an ingested file, an ignored
# file.
QUARANTINED = [f'{A}/COVID/broken{i:02}.png' for i in range(report_data.MAX_LISTED + 2)]
DUPLICATE = (f'{B}/NORMAL/copy of 4.png', _ingested_path(4))
IGNORED = f'{B}/notes|.txt'


def _write_ingest_report(uri):
  """The ingestion summary and manifest of TEST_SPLIT's images (the test split, with their
  sources), QUARANTINED, DUPLICATE and IGNORED."""
  rows = [
    dict(
      path=_ingested_path(i),
      status='ingested',
      split='test',
      label_name=labels.CLASS_NAMES[label],
      source=source,
      reason='',
    )
    for i, (_, label, source) in enumerate(TEST_SPLIT)
  ]
  rows += [
    dict(path=path, status='quarantined', source=A, reason='truncated', detail=f'{i} bytes short')
    for i, path in enumerate(QUARANTINED)
  ]
  rows += [
    dict(
      path=DUPLICATE[0],
      status='duplicate',
      split='test',
      label_name='NORMAL',
      source=B,
      reason='duplicate_within_split',
      detail=f'same content as {DUPLICATE[1]}',
      duplicate_of=DUPLICATE[1],
    ),
    dict(path=IGNORED, status='ignored', source=B, reason='not_an_image_file'),
  ]
  rows.sort(key=lambda row: row['path'])  # as ingestion writes it
  os.makedirs(uri)
  pq.write_table(
    pa.Table.from_pylist(rows, schema=manifest.SCHEMA), os.path.join(uri, manifest.MANIFEST_FILE)
  )
  with open(os.path.join(uri, manifest.SUMMARY_FILE), 'w') as f:
    patients = dict(images=9, patients=5, in_train_and_test=1, train_images_in_test=2)
    json.dump(dict(manifest.summarize(rows, 'data', [], 0.1), patients=patients), f)


def _put_artifact(store, type_name, uri, **properties):
  type_id = store.put_artifact_type(metadata_store_pb2.ArtifactType(name=type_name))
  artifact = metadata_store_pb2.Artifact(type_id=type_id, uri=uri)
  for key, value in properties.items():
    if isinstance(value, int):
      artifact.custom_properties[key].int_value = value
    else:
      artifact.custom_properties[key].string_value = value
  return store.put_artifacts([artifact])[0]


def _put_execution(store, run_context, type_name, inputs, outputs):
  """Records an execution of run `run_context` with its {key: artifact id} inputs and outputs."""
  type_id = store.put_execution_type(metadata_store_pb2.ExecutionType(name=type_name))
  [execution_id] = store.put_executions([metadata_store_pb2.Execution(type_id=type_id)])
  events = []
  for event_type, artifacts in (
    (metadata_store_pb2.Event.INPUT, inputs),
    (metadata_store_pb2.Event.OUTPUT, outputs),
  ):
    for key, artifact_id in artifacts.items():
      event = metadata_store_pb2.Event(
        artifact_id=artifact_id, execution_id=execution_id, type=event_type
      )
      event.path.steps.add().key = key
      event.path.steps.add().index = 0
      events.append(event)
  store.put_events(events)
  store.put_attributions_and_associations(
    [
      metadata_store_pb2.Attribution(context_id=run_context, artifact_id=a)
      for a in list(inputs.values()) + list(outputs.values())
    ],
    [metadata_store_pb2.Association(context_id=run_context, execution_id=execution_id)],
  )


@pytest.fixture(scope='module')
def output_dir(tmp_path_factory):
  """An output folder with a metadata store of three runs: the second trained a candidate,
  evaluated it against the blessed baseline of the first run, blessed and pushed it; the third
  failed before its evaluation."""
  root = tmp_path_factory.mktemp('report')
  paths = layout(str(root / 'output'))
  os.makedirs(paths.root)
  examples = fake_cxr_model.examples_artifact(
    str(root / 'examples'),
    [
      fake_cxr_model.serialized_example(row, label, source, sex=SEXES[i])
      for i, (row, label, source) in enumerate(TEST_SPLIT)
    ],
  )
  candidate = fake_cxr_model.model_artifact(str(root / 'candidate'), CANDIDATE, POINT, explain=True)
  baseline = fake_cxr_model.model_artifact(str(root / 'baseline'), BASELINE)
  evaluation_uri, blessing = fake_cxr_model.run_evaluator(
    str(root / 'evaluator'),
    examples,
    candidate,
    baseline,
    min_accuracy=0.5,
    min_covid_recall=0.5,
    max_accuracy_drop=0.0,
  )
  model_run_uri = str(root / 'model_run')
  training_report.write_report(
    model_run_uri,
    {
      'accuracy': [0.5, 0.8],
      'val_accuracy': [0.4, 0.7],
      'loss': [1.0, 0.5],
      'val_loss': [1.1, 0.6],
    },
    preset='recommended',
    epochs=2,
    train_class_counts={'COVID': 200, 'NORMAL': 40, 'VIRAL PNEUMONIA': 15},
    class_weights={'COVID': 0.425, 'NORMAL': 2.125, 'VIRAL PNEUMONIA': 5.6667},
  )
  training_report.write_calibration(
    model_run_uri,
    calibration.calibration_record(EVAL_LOGITS, EVAL_LABELS, 2.0),
    calibration.reliability_diagram_png(EVAL_LOGITS, EVAL_LABELS, 2.0, 'eval split'),
  )
  ood.write(OOD_RECORD, os.path.join(model_run_uri, ood.FILE))

  store = metadata_store.MetadataStore(
    tfx.orchestration.metadata.sqlite_metadata_connection_config(paths.metadata_path)
  )
  run_type = store.put_context_type(metadata_store_pb2.ContextType(name='pipeline_run'))
  old_run, run, _ = store.put_contexts(
    [
      metadata_store_pb2.Context(type_id=run_type, name=name)
      for name in ('old-run', RUN_ID, 'failed-run')
    ]
  )  # the last run stopped before the Evaluator
  ingest_report_uri = str(root / 'ingest_report')
  _write_ingest_report(ingest_report_uri)
  examples_id = _put_artifact(store, 'Examples', examples.uri)
  _put_execution(
    store,
    run,
    'ImageFolderExampleGen',
    {},
    {
      'examples': examples_id,
      'report': _put_artifact(store, 'cxr.IngestReport', ingest_report_uri),
    },
  )
  drift_uri = str(root / 'drift')
  os.makedirs(drift_uri)
  with open(os.path.join(drift_uri, drift_result.RESULT_FILE), 'w') as f:
    f.write(DRIFT.to_json())
  _put_execution(
    store, run, 'DriftCheck', {}, {'report': _put_artifact(store, 'cxr.DriftReport', drift_uri)}
  )
  baseline_id = _put_artifact(store, 'Model', baseline.uri)
  _put_execution(store, old_run, 'Trainer', {}, {'model': baseline_id})
  model_id = _put_artifact(store, 'Model', candidate.uri)
  _put_execution(
    store,
    run,
    'Trainer',
    {},
    {'model': model_id, 'model_run': _put_artifact(store, 'ModelRun', model_run_uri)},
  )
  blessing_id = _put_artifact(
    store, 'ModelBlessing', blessing.uri, blessed=blessing.get_int_custom_property('blessed')
  )
  _put_execution(
    store,
    run,
    'Evaluator',
    {'model': model_id, 'baseline_model': baseline_id, 'examples': examples_id},
    {
      'evaluation': _put_artifact(store, 'ModelEvaluation', evaluation_uri),
      'blessing': blessing_id,
    },
  )
  _put_execution(
    store,
    run,
    'Pusher',
    {'model': model_id, 'model_blessing': blessing_id},
    {
      'pushed_model': _put_artifact(
        store,
        'PushedModel',
        str(root / 'pushed'),
        pushed=1,
        pushed_destination=os.path.join(paths.serving_dir, '1767268800'),
      )
    },
  )
  return paths.root


def _covid_counts():
  """(tp, fn, tn, fp) of P(COVID) > POINT.threshold on TEST_SPLIT, by scikit-learn."""
  is_covid = np.array([label == 0 for _, label, _ in TEST_SPLIT])
  scores = np.float32([CANDIDATE[row][0] for row, _, _ in TEST_SPLIT]).astype(float)
  (tn, fp), (fn, tp) = sk_metrics.confusion_matrix(is_covid, scores > POINT.threshold)
  return tp, fn, tn, fp


def _heat_in_lungs(y_pred):
  """Per class, the mean share of the fake model's heat (quadrant row % 4) inside the default lung
  ellipses at the heatmaps' 8x8 grid, over the images predicted as the class."""
  yy, xx = (np.mgrid[0:8, 0:8] + 0.5) / 8
  lungs = np.zeros((8, 8), bool)
  for cx, cy, rx, ry in audit.Regions().lungs:
    lungs |= ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
  heat = fake_cxr_model.quadrant_heatmaps()
  shares = np.array([heat[row % 4][lungs].sum() / heat[row % 4].sum() for row, _, _ in TEST_SPLIT])
  return {
    name: pytest.approx(shares[np.asarray(y_pred) == i].mean())
    for i, name in enumerate(labels.CLASS_NAMES)
  }


def _section(text, title):
  start = text.index(f'## {title}')
  end = text.find('\n## ', start + 1)
  return text[start : end if end > 0 else None]


def test_report_of_the_latest_evaluated_run(output_dir):
  files = report.render_report(output_dir)
  report_dir = os.path.join(layout(output_dir).reports_dir, RUN_ID)
  assert files == (os.path.join(report_dir, 'report.md'), os.path.join(report_dir, 'report.html'))
  text = open(files.markdown).read()

  assert f'- Model: `{os.path.join(os.path.dirname(output_dir), "candidate")}`' in text
  decision = _section(text, 'Decision')
  assert f'**BLESSED**: pushed to `{layout(output_dir).serving_dir}/1767268800`.' in decision
  # COVID: 4 of 4 (95% CI 0.510-1); accuracy 10 of 12 (0.552-0.953).
  assert '| COVID recall | lower 95% bound | >= 0.5 | 1.0000 | 0.510–1.000 | 4 | pass |' in decision
  assert '| accuracy | lower 95% bound | >= 0.5 | 0.8333 | 0.552–0.953 | 12 | pass |' in decision
  assert (
    '| accuracy change vs baseline | candidate − baseline | >= +0 (absolute) | +0.0833 | n/a '
    '| n/a | pass |'
  ) in decision
  assert '- COVID recall 1.00 (95% CI 0.51–1.00, 4 images): lower bound at or above 0.50' in (
    decision
  )

  expected, y_true, y_pred = _expected()
  table = _section(text, 'Classification report')
  for i, name in enumerate(labels.CLASS_NAMES):
    scores, positive, predicted = expected[str(i)], y_true == i, y_pred == i
    tp, tn = np.sum(positive & predicted), np.sum(~positive & ~predicted)
    cells = [
      (scores['precision'], _wilson(tp, predicted.sum())),
      (scores['recall'], _wilson(tp, positive.sum())),
      (tn / np.sum(~positive), _wilson(tn, np.sum(~positive))),
      (tn / np.sum(~predicted), _wilson(tn, np.sum(~predicted))),
    ]
    assert (
      '| '
      + ' | '.join(
        [name]
        + [f'{v:.4f} ({lo:.3f}–{hi:.3f})' for v, (lo, hi) in cells]
        + [f'{scores["f1-score"]:.4f}', f'{scores["support"]:g}']
      )
      + ' |'
      in table
    )
  assert 'Accuracy 0.8333 (95% CI 0.552–0.953), 12 images.' in table
  macro = expected['macro avg']
  assert (
    f'| macro avg | {macro["precision"]:.4f} | {macro["recall"]:.4f} |  |  | '
    f'{macro["f1-score"]:.4f} | 12 |'
  ) in table

  matrix = sk_metrics.confusion_matrix(y_true, y_pred)
  assert '| COVID | ' + ' | '.join(f'{n:g}' for n in matrix[0]) + ' |' in _section(
    text, 'Confusion matrix'
  )
  tp, fn, tn, fp = _covid_counts()
  assert (tp, fn, tn, fp) == (4, 0, 7, 1)
  point = _section(text, 'COVID operating point')
  assert 'when P(COVID) > 0.4: the highest threshold' in point and 'the target, 0.95' in point
  sensitivity, specificity = _wilson(tp, tp + fn), _wilson(tn, tn + fp)
  assert (
    f'| test | 1.0000 ({sensitivity[0]:.3f}–{sensitivity[1]:.3f}) | '
    f'0.8750 ({specificity[0]:.3f}–{specificity[1]:.3f}) | 4 | 8 |'
  ) in point
  assert '| eval (threshold chosen) | 0.9500 (' in point and '| 20 | 40 |' in point
  gradcam = _section(text, 'Grad-CAM (where the model looks)')
  assert 'on 12 test images (the first 64 of each class).' in gradcam
  # COVID: no error; its 4 images (rows 0, 0, 3, 3), the most confident (row 0: 0.8) first.
  covid = gradcam[gradcam.index('COVID: most confident') :].split('\n\n')[1].split('\n')
  assert [line.split('](')[0] for line in covid] == ['![correct: predicted COVID (0.80)'] * 2 + [
    '![correct: predicted COVID (0.45)'
  ] * 2
  for line in covid:
    assert os.path.getsize(os.path.join(report_dir, line.split('](')[1].rstrip(')'))) > 0
  abstention = _section(text, 'Out-of-distribution abstention')
  assert (
    'when its `mahalanobis` score exceeds 12.5 or its appearance score (the Mahalanobis distance '
    'of its greyscale thumbnail to the training images) exceeds 9.75, the thresholds that '
    'together accept 99.0% of the 200 eval images (target 99%).'
  ) in abstention
  assert '| appearance | 0.9975 | always |' in abstention and '| energy | 0.7000 |  |' in abstention
  shortcut = _section(text, 'Shortcut audit (masking)')
  assert '| lung fields hidden | 0.3333 | 1.0000 |' in shortcut
  assert '| border band hidden | 0.8333 | 1.0000 |' in shortcut
  assert (
    'No shortcut suspected: with the lung fields hidden, accuracy falls to 0.33 (rule: shortcut '
    'suspected above chance 0.33 + 0.25).'
  ) in shortcut
  comparison = _section(text, 'Comparison with the blessed baseline')
  assert '| recall (COVID) | 1.0000 | 0.5000 | +0.5000 |' in comparison
  assert 'Baseline model: `' + os.path.join(os.path.dirname(output_dir), 'baseline') in comparison
  # Source B: 2 COVID images right, 1 of 2 VIRAL PNEUMONIA: accuracy 3/4, COVID recall 2/2.
  assert f'| source:{B_MD} | 4 | 0.7500 (0.301–0.954) | 1.0000 (0.342–1.000) |' in _section(
    text, 'By source'
  )
  # The subgroup slices are shown the same way (M: 4 of 6 right, no COVID image).
  low, high = stats.binomtest(4, 6).proportion_ci(method='wilson')
  assert f'| sex:M | 6 | 0.6667 ({low:.3f}–{high:.3f}) |' in _section(
    text, 'By source and subgroup'
  )
  assert '| sex:F | 6 | 1.0000 (' in _section(text, 'By source and subgroup')
  sources = _section(text, 'Sources and confounding')
  v = stats.contingency.association(SOURCE_TABLE, method='cramer')
  assert f"test: Cramér's V {v:.3f}" in sources and 'WARNING' not in sources
  assert f'| {A_MD} | 2 | 4 | 2 |' in sources and f'| {B_MD} | 2 | 0 | 2 |' in sources
  eval_record = calibration.calibration_record(EVAL_LOGITS, EVAL_LABELS, 2.0)
  calibrated = _section(text, 'Calibration')
  assert 'Temperature scaling: T = 2, fitted on the eval split (4 images)' in calibrated
  assert (
    f'| eval (4 images) | top-label ECE | {eval_record["ece_before"]:.4f} | '
    f'{eval_record["ece"]:.4f} |'
  ) in calibrated
  probabilities = np.array([CANDIDATE[row] for row, _, _ in TEST_SPLIT], np.float32)
  assert (
    f'| test (12 images) | top-label ECE | n/a | '
    f'{calibration.top_label_ece(probabilities, y_true):.4f} |'
  ) in calibrated
  assert '![Reliability diagram, eval split](reliability.png)' in calibrated
  training = _section(text, 'Training')
  assert '- preset: `"recommended"`' in training and '![Model accuracy](accuracy.png)' in training
  assert (
    '- Training examples by class: COVID 200, NORMAL 40, VIRAL PNEUMONIA 15; class weights of the '
    'training loss: COVID 0.4250, NORMAL 2.1250, VIRAL PNEUMONIA 5.6667'
  ) in training
  assert 'class_weights' not in training and 'train_class_counts' not in training
  assert markdown_text.escape(DRIFT.summary()) in _section(text, 'Drift between spans')
  data = _section(text, 'Data')
  assert '66 files found = 12 ingested + 52 quarantined + 1 duplicates + 1 ignored.' in data
  assert '| test | 4 | 4 | 4 | 12 |' in data and '| train | 0 | 0 | 0 | 0 |' in data
  assert 'Bad fraction: 52 of 65 image files quarantined (80.0%;' in data
  assert (
    'Patients: 9 images of 5 patients (DICOM PatientID or the metadata CSV, kept only as a salted '
    'hash), each patient in one split; 1 patients with images in both Train/ and Test/ are kept '
    'in test, with their 2 Train/ images.'
  ) in data
  # The first MAX_LISTED quarantined files by path, each a row of three cells, then a count.
  rows = [line for line in data.splitlines() if line.startswith(f'| {A_MD}/COVID/broken')]
  assert rows == [
    f'| {A_MD}/COVID/broken{i:02}.png | truncated | {i} bytes short |'
    for i in range(report_data.MAX_LISTED)
  ]
  assert 'The first 50 of 52 by path; `cxr report --json` (`data.quarantined`)' in data
  assert f'| {B_MD}/NORMAL/copy of 4.png | {A_MD}/NORMAL/4.png | duplicate_within_split |' in data
  assert f'| {B_MD}/notes&#124;.txt | not_an_image_file |' in data
  assert A not in text and B not in text
  for image in (
    'confusion_matrix.png',
    'covid_roc.png',
    'covid_precision_recall.png',
    'accuracy.png',
    'loss.png',
    'val_loss.png',
    'reliability.png',
  ):
    with open(os.path.join(report_dir, image), 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_report_of_an_unknown_or_unevaluated_run_fails_clearly(output_dir, tmp_path):
  with pytest.raises(
    ValueError, match=f"No run 'nope' in the metadata store; runs: old-run, {RUN_ID}, failed-run"
  ):
    report.render_report(output_dir, run_id='nope')
  with pytest.raises(ValueError, match='Run failed-run has no evaluation'):
    report.render_report(output_dir, run_id='failed-run')
  with pytest.raises(FileNotFoundError, match='No metadata store'):
    report.render_report(str(tmp_path))


def test_cxr_report_command(output_dir, capsys):
  from pipeline import cli

  assert cli.main(['report', '--output', output_dir, '--run', RUN_ID]) == 0
  report_dir = os.path.join(layout(output_dir).reports_dir, RUN_ID)
  assert capsys.readouterr().out.splitlines() == [
    os.path.join(report_dir, 'report.md'),
    os.path.join(report_dir, 'report.html'),
  ]


def test_cxr_report_json(output_dir, capsys):
  from pipeline import cli

  assert cli.main(['report', '--output', output_dir, '--run', RUN_ID, '--json']) == 0
  result = json.loads(capsys.readouterr().out)
  assert {
    'run_id',
    'blessed',
    'checks',
    'accuracy',
    'accuracy_ci',
    'classes',
    'calibration',
    'operating_point',
    'confounding',
    'audit',
    'data',
    'ood',
    'drift',
  } <= set(result)
  assert result['drift']['summary'] == (
    'span 2 vs span 1 (train split): drifted, allowed: width Jensen-Shannon 0.812 > 0.5'
  )
  assert result['drift']['distances'][0] == {
    'feature': 'width',
    'measure': 'Jensen-Shannon',
    'distance': 0.8125,
    'threshold': 0.5,
    'drifted': True,
  }
  assert result['ood'] == OOD_RECORD.to_json()
  assert (result['ood']['threshold'], result['ood']['eval_accept_rate']) == (12.5, 0.99)
  assert result['run_id'] == RUN_ID and result['blessed'] is True
  sources = result['confounding']
  assert sources['test']['table'] == {
    source: dict(zip(labels.CLASS_NAMES, row)) for source, row in zip((A, B), SOURCE_TABLE)
  }
  assert sources['test']['cramers_v'] == pytest.approx(
    stats.contingency.association(SOURCE_TABLE, method='cramer')
  )
  assert sources['train'] == {'table': {}, 'cramers_v': None, 'note': 'no images'}
  assert (sources['confounded_classes'], sources['allowed'], sources['warning']) == (
    [],
    False,
    None,
  )
  data = result['data']
  assert data['splits'] == {
    'train': dict.fromkeys(labels.CLASS_NAMES, 0),
    'eval': dict.fromkeys(labels.CLASS_NAMES, 0),
    'test': dict.fromkeys(labels.CLASS_NAMES, 4),
  }
  assert data['quarantined'] == [
    {'path': path, 'reason': 'truncated', 'detail': f'{i} bytes short'}
    for i, path in enumerate(QUARANTINED)
  ]  # all of them, not only the report's first MAX_LISTED
  assert data['duplicates'] == [
    {'path': DUPLICATE[0], 'duplicate_of': DUPLICATE[1], 'reason': 'duplicate_within_split'}
  ]
  assert data['ignored'] == [{'path': IGNORED, 'reason': 'not_an_image_file'}]
  assert data['bad_fraction'] == pytest.approx(52 / 65)
  assert data['input_base'] == 'data' and data['files_found'] == 66
  tp, fn, tn, fp = _covid_counts()
  assert result['operating_point'] == {
    'class': 'COVID',
    'threshold': 0.4,
    'target_sensitivity': 0.95,
    'sensitivity': 1.0,
    'sensitivity_ci': pytest.approx(_wilson(tp, tp + fn)),
    'specificity': pytest.approx(tn / (tn + fp)),
    'specificity_ci': pytest.approx(_wilson(tn, tn + fp)),
    'covid_images': 4,
    'other_images': 8,
    'eval_sensitivity': 0.95,
    'eval_specificity': pytest.approx(35 / 40),
  }
  checks = {c['name']: c for c in result['checks']}
  assert set(checks) == {
    'accuracy',
    'COVID recall',
    'accuracy change vs baseline',
    'lungs-hidden accuracy above chance',
  }
  assert {
    key: checks['COVID recall'][key]
    for key in ('threshold', 'value', 'passed', 'images', 'judged_on')
  } == {'threshold': 0.5, 'value': 1.0, 'passed': True, 'images': 4, 'judged_on': 'lower95'}
  assert checks['COVID recall']['ci'] == pytest.approx(_wilson(4, 4))
  assert checks['accuracy']['ci'] == pytest.approx(_wilson(10, 12))
  assert checks['accuracy change vs baseline']['value'] == pytest.approx(1 / 12)
  assert checks['accuracy change vs baseline']['ci'] is None

  expected, y_true, y_pred = _expected()
  assert result['accuracy'] == pytest.approx(expected['accuracy'])
  assert result['accuracy_ci'] == pytest.approx(_wilson(10, 12))
  assert list(result['classes']) == list(labels.CLASS_NAMES)
  for i, name in enumerate(labels.CLASS_NAMES):
    figures, scores = result['classes'][name], expected[str(i)]
    positive, predicted = y_true == i, y_pred == i
    tp, tn = np.sum(positive & predicted), np.sum(~positive & ~predicted)
    assert figures['precision'] == pytest.approx(scores['precision'])
    assert figures['precision_ci'] == pytest.approx(_wilson(tp, predicted.sum()))
    assert figures['recall'] == pytest.approx(scores['recall'])
    assert figures['recall_ci'] == pytest.approx(_wilson(tp, positive.sum()))
    assert figures['specificity'] == pytest.approx(sk_metrics.recall_score(~positive, ~predicted))
    assert figures['specificity_ci'] == pytest.approx(_wilson(tn, np.sum(~positive)))
    assert figures['npv'] == pytest.approx(sk_metrics.precision_score(~positive, ~predicted))
    assert figures['f1'] == pytest.approx(scores['f1-score'])
    assert figures['support'] == scores['support']
  # The fake candidate reads the lungs: hidden, it answers uniform probabilities (argmax COVID).
  assert result['audit'] == {
    'accuracy': pytest.approx(expected['accuracy']),
    'covid_recall': 1.0,
    'chance': pytest.approx(1 / 3),
    'lungs_hidden_accuracy': pytest.approx(sk_metrics.accuracy_score(y_true, [0] * 12)),
    'lungs_hidden_covid_recall': 1.0,
    'borders_hidden_accuracy': pytest.approx(expected['accuracy']),
    'borders_hidden_covid_recall': 1.0,
    'shortcut_margin': 0.25,
    'shortcut_suspected': False,
    'gated': True,
    'regions': None,  # the fake model stores none
    'heat_in_lungs': _heat_in_lungs(y_pred),
    'gradcam_images': 12,
  }
  calibrated = result['calibration']
  eval_logits = EVAL_LOGITS.astype(np.float64)
  assert calibrated['split'] == 'eval' and calibrated['images'] == 4
  assert calibrated['temperature'] == 2.0
  for key, scale in (('nll_before', 1.0), ('nll', 2.0)):
    log_p = eval_logits / scale - np.log(np.exp(eval_logits / scale).sum(axis=1, keepdims=True))
    assert calibrated[key] == pytest.approx(-np.mean(log_p[np.arange(4), EVAL_LABELS]))
  for key, scale in (('ece_before', 1.0), ('ece', 2.0)):
    eval_probabilities = np.exp(eval_logits / scale)
    eval_probabilities /= eval_probabilities.sum(axis=1, keepdims=True)
    assert calibrated[key] == pytest.approx(
      calibration.top_label_ece(eval_probabilities, EVAL_LABELS)
    )
    brier_key = key.replace('ece', 'brier')
    assert calibrated[brier_key] == pytest.approx(
      np.mean(np.sum((eval_probabilities - np.eye(3)[EVAL_LABELS]) ** 2, axis=1))
    )
  probabilities = np.array([CANDIDATE[row] for row, _, _ in TEST_SPLIT], np.float32)
  test = calibrated['test']
  assert test['split'] == 'test' and test['images'] == 12
  assert test['ece'] == pytest.approx(calibration.top_label_ece(probabilities, y_true), abs=1e-9)
  assert test['brier'] == pytest.approx(
    np.mean(np.sum((probabilities - np.eye(3)[y_true]) ** 2, axis=1)), abs=1e-6
  )


def test_calibration_section_says_why_no_temperature_was_fitted(tmp_path):
  logits, labels_ = np.array([[3.0, 0.0, 0.0], [0.0, 2.0, 1.0]]), np.array([0, 1])
  record = calibration.calibration_record(logits, labels_, 1.0)
  figures = report_calibration.calibration_json(record, {}, model='')
  assert figures['not_fitted'] == record['not_fitted'] and figures['temperature'] == 1.0
  text = '\n'.join(report_calibration.calibration_section(figures, None, str(tmp_path)))
  assert (
    'Temperature scaling: not fitted, every eval image is classified correctly, so the NLL keeps '
    'falling as T -> 0 and has no minimum: T = 1 kept (a fitted T would claim certainty).'
  ) in text
  assert 'fitted on the eval split' not in text


def test_drift_section_gives_the_verdict_and_every_distance():
  drift = '\n'.join(report_drift.drift_section(DRIFT))
  assert markdown_text.escape(DRIFT.summary()) in drift
  assert '| width | Jensen-Shannon | 0.812 | 0.5 | yes |' in drift
  assert '| format | L-infinity | 0.000 | 0.1 | no |' in drift
  assert 'No drift check recorded' in '\n'.join(report_drift.drift_section(None))


def test_sources_section_shows_the_confounding_warning():
  tables = {'test': {'A': {'COVID': 3}, 'B': {'NORMAL': 2, 'VIRAL PNEUMONIA': 1}}}
  text = '\n'.join(report_sources.sources_section(confounding.summarize(tables, allowed=True)))
  assert (
    '**WARNING**: Test classes confounded with their source: COVID only from A (3 images); these '
    'sources hold no test image of another class, so the test result may measure the source, not '
    'the class (allowed by --allow-confounded-sources).'
  ) in text
  assert "test: Cramér's V 1.000" in text and '| B | 0 | 2 | 1 |' in text
  assert "train: Cramér's V no images" in text


def test_run_summary_gives_the_decision_and_its_reasons(output_dir):
  from pipeline import run_summary

  lines = run_summary.summarize(output_dir).splitlines()
  assert lines[:2] == [
    f'Run {RUN_ID}',
    f'Model BLESSED and pushed to {layout(output_dir).serving_dir}/1767268800',
  ]
  assert '  COVID recall 1.00 (95% CI 0.51–1.00, 4 images): lower bound at or above 0.50' in lines
  assert '  accuracy 0.83 (95% CI 0.55–0.95, 12 images): lower bound at or above 0.50' in lines
  assert 'Accuracy 0.8333 (95% CI 0.552–0.953), 12 images.' in lines


CHROMIUM = shutil.which('chromium')


def _chromium(profile, *args):
  """Runs headless chromium (as the test services script installs it); returns its stdout."""
  return subprocess.run(
    [
      CHROMIUM,
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      f'--user-data-dir={profile}',
      *args,
    ],
    capture_output=True,
    text=True,
    timeout=120,
    check=True,
  ).stdout


@pytest.mark.skipif(
  CHROMIUM is None,
  reason='chromium is not installed: scripts/install_test_services.sh installs it (root, apt)',
)
def test_html_report_in_chromium(output_dir, tmp_path):
  files = report.render_report(output_dir, run_id=RUN_ID)
  screenshot = tmp_path / 'page.png'
  dom = _chromium(
    tmp_path / 'profile',
    '--dump-dom',
    f'--screenshot={screenshot}',
    '--window-size=1200,3000',
    f'file://{files.html}',
  )
  page = html_page.Page(dom)

  assert page.title == f'Run report: {RUN_ID}'
  # The source folders are text in their table cells: no element from the data, no cell split.
  assert [A, '2', '4', '2'] in page.rows and [B, '2', '0', '2'] in page.rows
  assert [f'source:{B}', '4', '0.7500 (0.301–0.954)', '1.0000 (0.342–1.000)'] in (
    row[:4] for row in page.rows
  )
  assert [f'{B}/NORMAL/copy of 4.png', f'{A}/NORMAL/4.png', 'duplicate_within_split'] in page.rows
  assert len([row for row in page.rows if row[0].startswith(f'{A}/COVID/broken')]) == 50
  # Every image is embedded: a PNG the page carries, none fetched (the injected one would be 'x').
  assert len(page.images) == 7 + len(TEST_SPLIT)  # the plots, and a Grad-CAM overlay per image
  for src in page.images:
    prefix, data = src.split(',', 1)
    assert prefix == 'data:image/png;base64'
    with Image.open(io.BytesIO(base64.b64decode(data))) as image:
      image.load()
      assert min(image.size) > 100
  # The images render: the page's only colours are the plots' (text and tables are grey). The
  # first 3000 pixels hold the confusion matrix and the ROC curves: 44,658 coloured pixels; the
  # same page with undecodable images has 231.
  pixels = np.asarray(Image.open(screenshot).convert('RGB')).astype(int)
  assert pixels.shape[:2] == (3000, 1200)
  assert np.sum(pixels.max(axis=2) - pixels.min(axis=2) > 60) > 20_000

  # No script runs, even one that got into the page: the Content-Security-Policy blocks it. The
  # same page without the policy shows that the script would change the title.
  page_html = open(files.html, encoding='utf-8').read()
  script = "<script>document.title = 'script ran'</script>"
  for name, policy_kept, title in (
    ('injected.html', True, f'Run report: {RUN_ID}'),
    ('no_policy.html', False, 'script ran'),
  ):
    injected = page_html.replace('<body>', '<body>' + script)
    if not policy_kept:
      injected = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', '', injected)
    (tmp_path / name).write_text(injected, encoding='utf-8')
    dom = _chromium(tmp_path / 'profile', '--dump-dom', f'file://{tmp_path / name}')
    assert html_page.Page(dom).title == title
