"""The Trainer: device/strategy/precision choices, best-epoch restore, and run_fn end to end."""

import glob
import json
import logging
import math
import os
import types

import numpy as np
import pytest
from scipy import special
from sklearn import metrics as sk_metrics
import tensorflow as tf

from components import audit
from components import calibration
from components import features
from components import hparams
from components import labels
from components import model as model_lib
from components import ood
from components import ood_images
from components import operating_point
from components import signatures
from components import trainer
from components import training_report
from components.image_spec import ImageSpec
import trainer_inputs

pytestmark = pytest.mark.xdist_group('trainer')  # one worker runs the module's run_fn fixture

SIZE = 32
AUDIT_REGIONS = audit.Regions(border=0.2)  # stored with the export


def test_keras_2_is_behind_tf_keras():
  assert trainer.keras_version().startswith('tf_keras 2.')


def test_one_device_unless_several_gpus(monkeypatch):
  monkeypatch.delenv('TF_CONFIG', raising=False)
  cpu = trainer.make_strategy(0)
  assert isinstance(cpu, tf.distribute.OneDeviceStrategy)
  assert cpu.extended.worker_devices[0].endswith('CPU:0')
  assert trainer.make_strategy(1).extended.worker_devices[0].endswith('GPU:0')
  assert isinstance(trainer.make_strategy(2), tf.distribute.MirroredStrategy)


def _tf_config(monkeypatch, **cluster):
  task = ('chief', 0) if 'chief' in cluster else ('worker', 0)
  monkeypatch.setenv(
    'TF_CONFIG',
    json.dumps({'cluster': cluster, 'task': {'type': task[0], 'index': task[1]}}),
  )


def test_a_cluster_of_one_machine_stays_on_its_gpus_or_cpu(monkeypatch):
  """Vertex sets TF_CONFIG with a lone chief for a one-replica job."""
  _tf_config(monkeypatch, chief=['10.0.0.2:2222'])
  assert isinstance(trainer.make_strategy(0), tf.distribute.OneDeviceStrategy)
  strategy = trainer.make_strategy(2)
  assert type(strategy) is tf.distribute.MirroredStrategy
  assert trainer.input_context(strategy) is None


@pytest.mark.parametrize(
  'cluster',
  [
    dict(worker=['10.0.0.2:2222', '10.0.0.3:2222']),
    dict(chief=['10.0.0.2:2222'], worker=['10.0.0.3:2222', '10.0.0.4:2222']),
  ],
)
def test_several_workers_in_tf_config_train_under_multi_worker_mirrored_strategy(
  monkeypatch, cluster
):
  """Checked on what the strategy is built from: building it here would start collective ops
  in this process (tests/test_multiworker_training.py builds real ones)."""
  _tf_config(monkeypatch, **cluster)
  monkeypatch.setattr(
    tf.distribute, 'MultiWorkerMirroredStrategy', lambda cluster_resolver: cluster_resolver
  )
  resolver = trainer.make_strategy(0)
  assert resolver.cluster_spec().as_dict() == cluster
  assert (resolver.task_type, resolver.task_id) == (next(iter(cluster)), 0)


@pytest.mark.parametrize(
  'mode, gpus, expected',
  [('auto', 0, False), ('auto', 1, True), ('on', 0, True), ('off', 2, False)],
)
def test_mixed_precision_choice(mode, gpus, expected):
  assert trainer.use_mixed_precision(mode, gpus) is expected


def test_dtype_policy_is_restored():
  with trainer.dtype_policy(True):
    assert tf.keras.mixed_precision.global_policy().name == 'mixed_float16'
  assert tf.keras.mixed_precision.global_policy().name == 'float32'


def _learnable_images(count, seed=0):
  """Images whose brightness gives away the class, and the labels."""
  rng = np.random.default_rng(seed)
  y = np.arange(count) % labels.NUM_CLASSES
  x = rng.normal(0, 0.1, (count, SIZE, SIZE, 3)) + (y[:, None, None, None] - 1) * 0.5
  return x.astype(np.float32), y


def test_gpu_code_path_runs_on_cpu():
  """MirroredStrategy (several GPUs) and mixed_float16 forced on, a few class-weighted steps of
  the head."""
  tf.keras.utils.set_random_seed(0)
  hp = hparams.resolve(
    'recommended', {'weights': 'none', 'freeze_layers': 1000, 'learning_rate': 1e-3}
  )
  with trainer.make_strategy(2).scope(), trainer.dtype_policy(trainer.use_mixed_precision('on', 0)):
    model = model_lib.build_model(SIZE, hp)
  assert model.get_layer('dense_1').compute_dtype == 'float16'
  assert model.get_layer('dense_1').kernel.dtype == tf.float32
  assert model.get_layer(model_lib.OUTPUT_NAME).compute_dtype == 'float32'
  assert model.output.dtype == tf.float32
  assert isinstance(model.optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
  head, base = (
    model.get_layer('dense_1').kernel,
    model.get_layer('resnet152v2').get_layer('conv5_block3_3_conv').kernel,
  )
  head_before, base_before = head.numpy(), base.numpy()
  x, y = _learnable_images(8)
  history = model.fit(
    tf.data.Dataset.from_tensors((x, y)).repeat(),
    steps_per_epoch=4,
    epochs=1,
    class_weight={0: 0.5, 1: 1.0, 2: 4.0},  # the Trainer's class weights, through both paths
    verbose=0,
  ).history
  assert np.isfinite(history['loss'][0])
  assert not np.array_equal(head.numpy(), head_before)
  np.testing.assert_array_equal(base.numpy(), base_before)

  copy = trainer.serving_copy(model, ImageSpec(size=SIZE), hp)
  assert copy.get_layer('dense_1').compute_dtype == 'float32'
  for a, b in zip(copy.get_weights(), model.get_weights()):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_allclose(copy(x, training=False), model(x, training=False), atol=1e-2)


def _tiny_model():
  """Softmax regression starting out sure of class 1; trained on class 0 only."""
  inputs = tf.keras.Input((2,))
  outputs = tf.keras.layers.Dense(
    3,
    activation='softmax',
    kernel_initializer='zeros',
    bias_initializer=tf.keras.initializers.Constant([0.0, 3.0, 0.0]),
  )(inputs)
  model = tf.keras.Model(inputs, outputs)
  model.compile(tf.keras.optimizers.SGD(0.2), 'sparse_categorical_crossentropy')
  return model


def _tiny_data(eval_features=None):
  """Train on class 0 only, validate on classes 0 and 1: val_loss falls, then rises."""
  x = np.ones((8, 2), np.float32)
  train = tf.data.Dataset.from_tensors((x, np.zeros(8, np.int64))).repeat()
  evaluation = tf.data.Dataset.from_tensors(
    (x if eval_features is None else eval_features, np.arange(8) % 2)
  )
  return train, evaluation


@pytest.mark.parametrize('patience', [0, 2])
def test_the_best_epoch_weights_are_restored(patience):
  model = _tiny_model()
  train, evaluation = _tiny_data()
  hp = hparams.resolve('seed', {'epochs': 8, 'early_stopping_patience': patience})
  history, best_epoch = trainer.fit_best(model, train, evaluation, hp, steps_per_epoch=1)
  val_losses = history['val_loss']
  assert best_epoch == int(np.argmin(val_losses)) + 1 and 1 < best_epoch < len(val_losses)
  assert len(val_losses) == (best_epoch + patience if patience else 8)
  assert model.evaluate(evaluation, verbose=0) == pytest.approx(
    val_losses[best_epoch - 1], rel=1e-6
  )
  assert val_losses[-1] > val_losses[best_epoch - 1] * 1.01


def test_plateau_schedule_cuts_the_learning_rate():
  model = _tiny_model()
  train, evaluation = _tiny_data()
  hp = hparams.resolve(
    'recommended',
    {
      'epochs': 6,
      'early_stopping_patience': 0,
      'learning_rate': 0.2,
      'plateau_patience': 1,
      'plateau_factor': 0.5,
    },
  )
  history, best_epoch = trainer.fit_best(model, train, evaluation, hp, steps_per_epoch=1)
  val_losses, rates = history['val_loss'], history['lr']
  first_worse = next(i for i in range(1, 6) if val_losses[i] >= min(val_losses[:i]))
  assert rates[: first_worse + 1] == pytest.approx([0.2] * (first_worse + 1))
  assert rates[first_worse + 1] == pytest.approx(0.1)


def test_cosine_schedule_decays_the_learning_rate_each_epoch_whatever_val_loss_does():
  model = _tiny_model()
  train, evaluation = _tiny_data()
  hp = hparams.resolve(
    'recommended',
    {'epochs': 5, 'early_stopping_patience': 0, 'learning_rate': 0.2, 'lr_schedule': 'cosine'},
  )
  history, _ = trainer.fit_best(model, train, evaluation, hp, steps_per_epoch=1)
  expected = [0.2 * 0.5 * (1 + math.cos(math.pi * epoch / 5)) for epoch in range(5)]
  assert history['lr'] == pytest.approx(expected, rel=1e-5)


def test_without_a_finite_val_loss_the_last_weights_stay():
  model = _tiny_model()
  train, evaluation = _tiny_data(eval_features=np.full((8, 2), np.nan, np.float32))
  history, best_epoch = trainer.fit_best(
    model, train, evaluation, hparams.resolve('seed', {'epochs': 2}), steps_per_epoch=1
  )
  assert best_epoch == 0 and np.isnan(history['val_loss']).all()
  assert model.layers[-1].get_weights()[1][0] > 0  # trained towards class 0, not reset


class _Records(logging.Handler):
  def __init__(self):
    super().__init__(logging.INFO)
    self.messages = []

  def emit(self, record):
    self.messages.append(record.getMessage())


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """run_fn on a tiny Transform output (24 train / 6 eval images, 32 px, 2 epochs).

  Returns fn_args, the raw examples, the log messages and what run_fn calibrated the temperature
  on: the unscaled model's eval logits and labels.
  """
  root = tmp_path_factory.mktemp('trainer')
  raw = trainer_inputs.raw_splits(train=24, eval_=6)
  custom_config = dict(
    trainer_inputs.TINY_CONFIG, epochs=2, batch_size=8, **AUDIT_REGIONS.to_config()
  )
  assert custom_config['image_size'] == SIZE
  fn_args = trainer_inputs.transformed_fn_args(root, raw, custom_config)
  root, records = logging.getLogger(), _Records()
  level = root.level
  root.setLevel(logging.INFO)
  root.addHandler(records)
  eval_logits = []
  real_calibrate = trainer.calibrate

  def recording(model, logits, labels, model_run_dir):
    eval_logits.append((logits.copy(), labels.copy()))
    return real_calibrate(model, logits, labels, model_run_dir)

  try:
    with pytest.MonkeyPatch.context() as patch:
      patch.setattr(trainer, 'calibrate', recording)
      trainer.run_fn(fn_args)
  finally:
    root.removeHandler(records)
    root.setLevel(level)
  [logits_and_labels] = eval_logits
  return fn_args, raw, records.messages, logits_and_labels


def _loaded(fn_args):
  return tf.saved_model.load(fn_args.serving_model_dir)


def _eval_pngs(raw):
  return [
    tf.train.Example.FromString(e).features.feature[features.IMAGE_KEY].bytes_list.value[0]
    for e in raw['eval']
  ]


def _calibration_record(fn_args):
  with open(os.path.join(fn_args.model_run_dir, training_report.CALIBRATION_FILE)) as f:
    return json.load(f)


def _assert_temperature_scaled(outputs, trained):
  """The probabilities are softmax(logits / T) of the unscaled model's logits, same argmax."""
  fn_args, _, _, (logits, _) = trained
  expected = special.softmax(logits / _calibration_record(fn_args)['temperature'], axis=1)
  np.testing.assert_allclose(outputs['probabilities'].numpy(), expected, atol=1e-5)
  np.testing.assert_array_equal(outputs['class_id'].numpy(), np.argmax(logits, axis=1))


def test_export_serves_raw_png_bytes_and_applies_the_operating_point(trained):
  """The operating threshold reaches the target sensitivity on the eval split and is the one the
  served model applies."""
  fn_args, raw, messages, _ = trained
  model = _loaded(fn_args)
  assert set(model.signatures) == {
    'serving_default',
    'serving_examples',
    signatures.EVALUATION_SIGNATURE,
    'transform_features',
    'explain',
  }
  pngs = _eval_pngs(raw)
  outputs = model.signatures['serving_default'](image_bytes=tf.constant(pngs))
  probabilities = outputs['probabilities'].numpy()
  assert probabilities.shape == (6, labels.NUM_CLASSES) and probabilities.dtype == np.float32
  np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
  np.testing.assert_array_equal(outputs['class_id'].numpy(), probabilities.argmax(axis=1))
  _assert_temperature_scaled(outputs, trained)

  point = operating_point.read(fn_args.serving_model_dir)
  assert point.threshold in operating_point.GRID and point.target_sensitivity == 0.95
  covid, is_covid = probabilities[:, 0].astype(np.float64), np.arange(6) % 3 == 0
  np.testing.assert_array_equal(outputs['covid_positive'].numpy(), covid > point.threshold)
  # The highest grid value reaching the target on the eval split: the next one up does not.
  assert sk_metrics.recall_score(is_covid, covid > point.threshold) >= 0.95
  next_up = operating_point.GRID[operating_point.GRID.index(point.threshold) + 1]
  assert sk_metrics.recall_score(is_covid, covid > next_up) < 0.95
  (tn, fp), (fn, tp) = sk_metrics.confusion_matrix(is_covid, covid > point.threshold)
  assert (point.true_positives, point.false_negatives) == (tp, fn)
  assert (point.true_negatives, point.false_positives) == (tn, fp)
  with open(os.path.join(fn_args.model_run_dir, training_report.HISTORY_FILE)) as f:
    assert json.load(f)['operating_point'] == point.to_json()
  line = next(m for m in messages if m.startswith('COVID operating point:'))
  assert f'P(COVID) > {point.threshold:g} reaches sensitivity' in line and 'target 0.95' in line
  with open(os.path.join(fn_args.serving_model_dir, audit.REGIONS_FILE)) as f:
    assert audit.Regions.from_json(json.load(f)) == AUDIT_REGIONS


def test_explain_gives_a_heatmap_per_image_and_the_served_classes(trained):
  """Grad-CAM on the ResNet base's `post_relu`: 1x1 at 32 px, so each heatmap is uniform
  (all 1, or all 0 when the evidence is negative); its shape is the model input's."""
  fn_args, raw, _, _ = trained
  model = _loaded(fn_args)
  pngs = tf.constant(_eval_pngs(raw))
  explained = model.signatures['explain'](image_bytes=pngs)
  served = model.signatures['serving_default'](image_bytes=pngs)
  np.testing.assert_allclose(
    explained['probabilities'].numpy(), served['probabilities'].numpy(), atol=1e-6
  )
  np.testing.assert_array_equal(explained['class_id'].numpy(), served['class_id'].numpy())
  heatmaps = explained['heatmap'].numpy()
  assert heatmaps.shape == (6, SIZE, SIZE) and heatmaps.dtype == np.float32
  assert all(np.unique(heatmap).tolist() in ([0.0], [1.0]) for heatmap in heatmaps)


def test_exported_weights_are_those_of_the_best_epoch(trained):
  fn_args, raw, _, _ = trained
  with open(os.path.join(fn_args.model_run_dir, training_report.HISTORY_FILE)) as f:
    report = json.load(f)
  val_losses = report['history']['val_loss']
  assert report['best_epoch'] == int(np.argmin(val_losses)) + 1
  outputs = _loaded(fn_args).signatures['serving_examples'](examples=tf.constant(raw['eval']))
  _assert_temperature_scaled(outputs, trained)
  probabilities = outputs['probabilities'].numpy()
  threshold = operating_point.read(fn_args.serving_model_dir).threshold
  np.testing.assert_array_equal(
    outputs['covid_positive'].numpy(), probabilities[:, 0].astype(np.float64) > threshold
  )
  truth = np.arange(6) % 3
  # Before temperature scaling the eval NLL is Keras' val_loss of the best epoch; the export
  # serves the scaled model, whose NLL is the recorded one.
  record = _calibration_record(fn_args)
  assert record['nll_before'] == pytest.approx(val_losses[report['best_epoch'] - 1], rel=1e-4)
  serving_loss = -np.mean(np.log(np.clip(probabilities[np.arange(6), truth], 1e-7, 1.0)))
  assert serving_loss == pytest.approx(record['nll'], rel=1e-4)


def test_the_temperature_minimises_the_eval_nll_and_travels_with_the_export(trained):
  fn_args, _, messages, (logits, eval_labels) = trained
  np.testing.assert_array_equal(eval_labels, np.arange(6) % 3)
  record = _calibration_record(fn_args)
  temperature = record['temperature']
  with open(os.path.join(fn_args.serving_model_dir, 'assets.extra', 'calibration.json')) as f:
    assert json.load(f) == record

  def eval_nll(t):
    return -np.mean(special.log_softmax(logits / t, axis=1)[np.arange(6), eval_labels])

  assert record['nll'] == pytest.approx(eval_nll(temperature), rel=1e-9)
  assert record['nll_before'] == pytest.approx(eval_nll(1.0), rel=1e-9)
  # The minimum over the searched temperatures: where a nearly separable eval split pushes it to
  # the lowest one, the NLL only has to rise above it.
  assert eval_nll(temperature) < eval_nll(temperature / 0.9)
  if temperature * 0.9 > np.exp(calibration.LOG_T_BOUNDS[0]):
    assert eval_nll(temperature) < eval_nll(temperature * 0.9)
  assert record['nll'] <= record['nll_before'] and temperature != pytest.approx(1.0, abs=1e-3)
  with open(os.path.join(fn_args.model_run_dir, training_report.RELIABILITY_PNG), 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  assert any(m.startswith('Temperature scaling on the eval split (6 images): T=') for m in messages)


def test_history_plots_and_tensorboard_logs_are_written(trained):
  fn_args, _, _, _ = trained
  with open(os.path.join(fn_args.model_run_dir, training_report.HISTORY_FILE)) as f:
    report = json.load(f)
  assert set(report['history']) == {'loss', 'accuracy', 'val_loss', 'val_accuracy', 'lr'}
  assert all(len(values) == 2 for values in report['history'].values())
  assert report['hparams']['epochs'] == 2 and report['train_examples'] == 24
  # The default class_weight 'balanced', on a balanced train split: every weight is 1.
  assert report['hparams']['class_weight'] == 'balanced'
  assert report['train_class_counts'] == dict.fromkeys(labels.CLASS_NAMES, 8)
  assert report['class_weights'] == dict.fromkeys(labels.CLASS_NAMES, 1.0)
  for name in training_report.PLOTS:
    with open(os.path.join(fn_args.model_run_dir, name), 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  assert glob.glob(os.path.join(fn_args.model_run_dir, 'train', 'events.out.tfevents.*'))
  assert glob.glob(os.path.join(fn_args.model_run_dir, 'validation', 'events.out.tfevents.*'))


def test_log_has_versions_a_line_per_epoch_and_the_report(trained):
  fn_args, _, messages, _ = trained
  assert any('tf_keras 2.' in m for m in messages)
  assert any('OneDeviceStrategy with 1 replica(s), global batch 8' in m for m in messages)
  assert any(
    '24 training examples (COVID 8, NORMAL 8, VIRAL PNEUMONIA 8), 3 steps per epoch; '
    'eval steps: whole split; class weights: COVID 1, NORMAL 1, VIRAL PNEUMONIA 1' in m
    for m in messages
  )
  for epoch in (1, 2):
    line = next(m for m in messages if m.startswith(f'  epoch {epoch}/2 ('))
    assert all(f'{key}=' in line for key in ('loss', 'accuracy', 'val_loss', 'val_accuracy', 'lr'))
    assert ' left' not in line  # 2 epochs: no estimate after the first nor the last
  report_line = next(m for m in messages if m.startswith('Training report:'))
  assert all(
    os.path.join(fn_args.model_run_dir, name) in report_line for name in training_report.PLOTS
  )


def test_epoch_lines_estimate_the_time_left_from_the_epochs_after_the_first(monkeypatch, caplog):
  clock = iter([0.0, 400.0, 400.0, 410.0, 410.0, 422.0, 422.0, 433.0])  # begin, end per epoch
  monkeypatch.setattr(trainer, 'time', types.SimpleNamespace(time=lambda: next(clock)))
  model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(1,))])
  model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss='mse')
  logger = trainer.EpochLogger(epochs=4)
  logger.set_model(model)
  with caplog.at_level('INFO', logger='cxr.progress'):
    for epoch in range(4):
      logger.on_epoch_begin(epoch)
      logger.on_epoch_end(epoch, {'loss': 0.5})
  assert [r.getMessage() for r in caplog.records] == [
    '  epoch 1/4 (6 min 40 s): loss=0.5000 lr=0.01',  # building the graphs: no estimate
    '  epoch 2/4 (10 s): loss=0.5000 lr=0.01; about 20 s left',
    '  epoch 3/4 (12 s): loss=0.5000 lr=0.01; about 11 s left',
    '  epoch 4/4 (11 s): loss=0.5000 lr=0.01',
  ]


def test_warm_start_restores_the_exported_weights(trained):
  fn_args, _, _, _ = trained
  hp = hparams.from_custom_config(fn_args.custom_config)
  loaded = _loaded(fn_args)
  exported = {v.name: v.numpy() for v in loaded.signatures['serving_default'].variables}
  model = model_lib.build_model(SIZE, hp, warm_start_from=fn_args.serving_model_dir, weights='none')
  weights = {v.name: v.numpy() for v in model.variables}
  assert len(exported) > 280 and set(exported) <= set(weights)  # ResNet50V2 270, the head 20
  for name, value in exported.items():
    np.testing.assert_array_equal(weights[name], value)


def test_warm_start_from_another_architecture_is_refused(trained):
  fn_args, _, _, _ = trained
  hp = hparams.resolve('recommended', {'backbone': 'resnet50v2', 'dense_units': [32]})
  with pytest.raises(model_lib.WeightsError, match='Cannot warm start from .*incompatible tensor'):
    model_lib.build_model(SIZE, hp, warm_start_from=fn_args.serving_model_dir, weights='none')


def test_the_ood_scores_are_served_with_their_thresholds_and_record(trained):
  """The served ood_score is the chosen method's and appearance_score the appearance's: their
  AUROCs on the eval split against the reference non-CXR images are the recorded ones, and each
  threshold is the top eval score (fewer than 199 eval images)."""
  fn_args, raw, messages, _ = trained
  with open(os.path.join(fn_args.model_run_dir, ood.FILE)) as f:
    record = json.load(f)
  with open(os.path.join(fn_args.serving_model_dir, ood.ASSET)) as f:
    assert json.load(f) == record
  assert record['method'] in ood.METHODS and set(record['auroc']) == set(ood.METHODS)
  assert record['auroc'][record['method']] == max(record['auroc'].values())
  reference = [png for _, png in ood_images.generate()]
  assert (record['train_images'], record['eval_images']) == (24, 6)
  assert record['reference_images'] == len(reference)
  assert record['note'].startswith('only 6 eval images: too few to accept 0.99 of new')
  model = _loaded(fn_args)
  eval_outputs = model.signatures['serving_examples'](examples=tf.constant(raw['eval']))
  reference_outputs = model.signatures['serving_default'](image_bytes=tf.constant(reference))
  assert record['eval_accept_rate'] == 1.0 and record['appearance']['eval_accept_rate'] == 1.0
  inside, below_top = np.ones(len(reference), bool), np.ones(len(raw['eval']), bool)
  for score, threshold, auroc in (
    ('ood_score', record['threshold'], record['auroc'][record['method']]),
    ('appearance_score', record['appearance']['threshold'], record['appearance']['auroc']),
  ):
    eval_scores = eval_outputs[score].numpy()
    assert eval_scores.max() == pytest.approx(threshold, rel=1e-5)
    below_top &= eval_scores < eval_scores.max()
    reference_scores = reference_outputs[score].numpy()
    inside &= reference_scores.astype(np.float64) <= threshold
    truth = np.r_[np.zeros(len(eval_scores)), np.ones(len(reference_scores))]
    assert sk_metrics.roc_auc_score(truth, np.r_[eval_scores, reference_scores]) == pytest.approx(
      auroc, abs=1e-6
    )
  np.testing.assert_array_equal(reference_outputs['in_distribution'], inside)
  assert below_top.any() and eval_outputs['in_distribution'].numpy()[below_top].all()
  assert any(m.startswith(f'Out-of-distribution score: {record["method"]}') for m in messages)
