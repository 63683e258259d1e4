"""TFX Trainer `run_fn`: trains the ResNet152V2 transfer model and exports it with its signatures.

The image spec and the hyperparameters come from the Trainer's custom_config
(components.image_spec, components.hparams). One GPU or the CPU runs under OneDeviceStrategy,
several GPUs under MirroredStrategy, several machines (TF_CONFIG listing several workers) under
MultiWorkerMirroredStrategy, each worker reading its shard of the data and only the chief's
outputs kept; mixed precision and XLA are options. The training loss is weighted by class
against imbalance (components.class_weights).
The weights of the epoch with the lowest val_loss are the ones exported, with one temperature,
fitted on the eval split, folded into the output layer (components.calibration), and the COVID
operating point chosen on the eval split's calibrated probabilities (components.operating_point),
and the out-of-distribution score and threshold fitted on the train
and eval splits (components.ood) served beside the class.
"""

import contextlib
import dataclasses
import importlib
import json
import logging
import math
import os
import time
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np
from scipy import special
import tensorflow as tf
from tensorflow.python.distribute import multi_worker_util
import tensorflow_transform as tft
from tf_keras.src.distribute import distributed_file_utils
from tf_keras.src.saving.legacy.saved_model import utils as keras_saved_model_utils
from tfx import v1 as tfx

from components import audit
from components import calibration
from components import class_weights
from components import hparams as hparams_lib
from components import image_spec
from components import input_pipeline
from components import labels
from components import model as model_lib
from components import ood
from components import ood_images
from components import operating_point
from components import progress
from components import signatures
from components import training_report

CALIBRATION_ASSET = os.path.join('assets.extra', training_report.CALIBRATION_FILE)


def keras_version() -> str:
  """'tf_keras 2.16.0' (Keras 2, what TFT needs) or 'keras 3.x' behind tf.keras."""
  package = tf.keras.__name__.split('.')[0]
  return f'{package} {importlib.import_module(package).__version__}'


def configure_gpus() -> int:
  """Turns on memory growth for every visible GPU (CUDA_VISIBLE_DEVICES); returns their count."""
  gpus = tf.config.list_physical_devices('GPU')
  for gpu in gpus:
    try:
      tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:  # an earlier component of this process already initialised the GPUs
      logging.warning(
        'Cannot turn on memory growth for %s now; set TF_FORCE_GPU_ALLOW_GROWTH=true '
        'before the pipeline starts',
        gpu.name,
      )
  return len(gpus)


def make_strategy(gpu_count: int) -> tf.distribute.Strategy:
  """MultiWorkerMirroredStrategy when TF_CONFIG's cluster has several workers (chief included),
  over each one's GPUs or CPU; else MirroredStrategy over all GPUs when there are several, else
  the one GPU or the CPU."""
  cluster = tf.distribute.cluster_resolver.TFConfigClusterResolver()
  jobs = cluster.cluster_spec().as_dict()
  if len(jobs.get('chief', [])) + len(jobs.get('worker', [])) > 1:
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=cluster)
  if gpu_count > 1:
    return tf.distribute.MirroredStrategy()
  return tf.distribute.OneDeviceStrategy('/gpu:0' if gpu_count else '/cpu:0')


def input_context(strategy: tf.distribute.Strategy) -> Optional[tf.distribute.InputContext]:
  """This worker's share of the input (input_pipeline.make_dataset) under
  MultiWorkerMirroredStrategy, numbered as TensorFlow numbers the workers (chief first, by its
  multi_worker_util); None under the single-machine strategies.

  Built here, not handed out by strategy.distribute_datasets_from_function: tf_keras 2.16's fit
  turns `class_weight` into a `dataset.map` (engine/data_adapter.py), which a distributed dataset
  does not have, and the eval split's `take(eval_steps)` needs a tf.data.Dataset too.
  """
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return None
  resolver = strategy.cluster_resolver
  spec = resolver.cluster_spec()
  return tf.distribute.InputContext(
    num_input_pipelines=multi_worker_util.worker_count(spec, resolver.task_type),
    input_pipeline_id=multi_worker_util.id_in_cluster(spec, resolver.task_type, resolver.task_id),
    num_replicas_in_sync=strategy.num_replicas_in_sync,
  )


@contextlib.contextmanager
def worker_dir(path: str, strategy: tf.distribute.Strategy) -> Iterator[str]:
  """The folder to write `path`'s outputs to: `path` itself on the chief (or on one machine);
  on the other workers of a cluster a temporary folder inside it, deleted on the way out (the
  Keras pattern, distributed_file_utils), so that only the chief's outputs remain. Every worker
  runs the same steps after training, as TFX's Trainer expects (its executor fails when
  `serving_model_dir` does not exist)."""
  try:
    yield distributed_file_utils.write_dirpath(path, strategy)
  finally:
    distributed_file_utils.remove_temp_dirpath(path, strategy)


def wait_for_all_workers(strategy: tf.distribute.Strategy) -> None:
  """Returns once every worker of the cluster got here (an all-reduce; at once on one machine).
  Called after the outputs are written, it keeps any worker from finishing before the chief's
  export is complete and every worker's temporary folders are gone (worker_dir): TFX's Trainer
  executor checks `serving_model_dir` on each worker as it finishes."""
  one = tf.function(lambda: tf.constant(1.0))
  strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(one), axis=None)


def use_mixed_precision(mode: str, gpu_count: int) -> bool:
  """'on', 'off', or 'auto': mixed_float16 only where it pays off, i.e. on GPUs."""
  return mode == 'on' or (mode == 'auto' and gpu_count > 0)


@contextlib.contextmanager
def dtype_policy(mixed: bool) -> Iterator[None]:
  """Sets the Keras global dtype policy for the layers built inside, then restores it."""
  previous = tf.keras.mixed_precision.global_policy()
  tf.keras.mixed_precision.set_global_policy('mixed_float16' if mixed else 'float32')
  try:
    yield
  finally:
    tf.keras.mixed_precision.set_global_policy(previous)


def serving_copy(
  model: tf.keras.Model, image: image_spec.ImageSpec, hp: hparams_lib.HParams
) -> tf.keras.Model:
  """A float32 copy of `model` without optimizer state: the model to export.

  Float32 serves everywhere (CPUs lack fast float16), and the optimizer's slots would triple the
  SavedModel's size.
  """
  with dtype_policy(False):
    copy = model_lib.build_model(image.size, hp, weights='none')
  copy.set_weights(model.get_weights())
  return copy


def observe(model: tf.keras.Model, data: Iterable[Tuple[tf.Tensor, Any]]) -> ood.Observed:
  """One pass of `model` over batches of (model input, labels): the output layer's input (float64
  [N, features]), its logits x @ W + b (logits_of), the appearance thumbnails (ood.appearance)
  and the labels.

  The logits are computed exactly rather than as the log of rounded probabilities. The sub-model
  runs eagerly: a predict function would first trace ResNet152V2 (about a minute on 2 CPU cores)
  for one pass.
  """
  penultimate = tf.keras.Model(model.input, model.get_layer(model_lib.OUTPUT_NAME).input)
  features, appearance, labels = [], [], []
  for images, batch_labels in data:
    features.append(np.asarray(penultimate(images, training=False), np.float64))
    appearance.append(ood.appearance(images).numpy())
    labels.append(np.asarray(batch_labels))
  features = np.concatenate(features)
  return ood.Observed(
    features, logits_of(model, features), np.concatenate(appearance), np.concatenate(labels)
  )


def logits_of(model: tf.keras.Model, features: np.ndarray) -> np.ndarray:
  """x @ W + b of the output layer (float64) for its input `features`."""
  kernel, bias = (
    np.asarray(w, np.float64) for w in model.get_layer(model_lib.OUTPUT_NAME).get_weights()
  )
  return features @ kernel + bias


def fold_temperature(model: tf.keras.Model, temperature: float) -> None:
  """Divides the output layer's kernel and bias by `temperature`: the model's softmax becomes
  softmax(logits / temperature), with the same graph and the same argmax."""
  output = model.get_layer(model_lib.OUTPUT_NAME)
  output.set_weights([w / temperature for w in output.get_weights()])


def calibrate(
  model: tf.keras.Model, logits: np.ndarray, labels: np.ndarray, model_run_dir: str
) -> Dict[str, float]:
  """Fits a temperature on `model`'s eval `logits` and `labels` (observe), folds
  it into `model`, writes the calibration record and its reliability diagram into
  `model_run_dir`; returns the record."""
  temperature = calibration.fit_temperature(logits, labels)
  fold_temperature(model, temperature)
  record = calibration.calibration_record(logits, labels, temperature)
  training_report.write_calibration(
    model_run_dir,
    record,
    calibration.reliability_diagram_png(
      logits, labels, temperature, f'Reliability, eval split ({len(labels)} images)'
    ),
  )
  if record['not_fitted']:
    logging.warning('Temperature scaling: not fitted, %s', record['not_fitted'])
  logging.info(
    'Temperature scaling on the eval split (%d images): T=%.4g; NLL %.4f -> %.4f, '
    'top-label ECE %.4f -> %.4f, Brier %.4f -> %.4f',
    len(labels),
    temperature,
    record['nll_before'],
    record['nll'],
    record['ece_before'],
    record['ece'],
    record['brier_before'],
    record['brier'],
  )
  return record


class EpochLogger(tf.keras.callbacks.Callback):
  """One progress line per epoch (components.progress): duration, metrics, learning rate and,
  from the second epoch on, the time the remaining epochs take at the mean pace of the epochs after
  the first (which also traces the graphs); early stopping may cut it."""

  def __init__(self, epochs: int):
    super().__init__()
    self._epochs = epochs
    self._start = self._first_end = 0.0

  def on_epoch_begin(self, epoch, logs=None):
    self._start = time.time()

  def on_epoch_end(self, epoch, logs=None):
    now = time.time()
    left = self._epochs - epoch - 1
    if not epoch:
      self._first_end = now
    metrics = ' '.join(f'{k}={v:.4f}' for k, v in sorted((logs or {}).items()) if k != 'lr')
    lr = float(tf.keras.backend.get_value(self.model.optimizer.learning_rate))
    progress.logger.info(
      '  epoch %d/%d (%s): %s lr=%.3g%s',
      epoch + 1,
      self._epochs,
      progress.duration(now - self._start),
      metrics,
      lr,
      f'; about {progress.duration((now - self._first_end) / epoch * left)} left'
      if epoch and left
      else '',
    )


class BestWeights(tf.keras.callbacks.Callback):
  """Keeps, in memory, the weights of the epoch with the lowest finite val_loss (the first of
  equals). Not ModelCheckpoint: under MultiWorkerMirroredStrategy it keeps its file on the chief
  only, while every worker must restore them (reading the model's weights afterwards is a
  collective over all workers); val_loss and the weights are the same on every worker."""

  def __init__(self):
    super().__init__()
    self.loss, self.epoch, self.weights = math.inf, 0, None

  def on_epoch_end(self, epoch, logs=None):
    loss = (logs or {}).get('val_loss')
    if loss is not None and math.isfinite(loss) and loss < self.loss:
      self.loss, self.epoch, self.weights = loss, epoch + 1, self.model.get_weights()


def make_callbacks(
  hp: hparams_lib.HParams, best: BestWeights, log_dir: str
) -> List[tf.keras.callbacks.Callback]:
  """The best weights, the lr schedule, optional early stopping, TensorBoard, log lines."""
  callbacks = [best]
  if hp.lr_schedule == 'cosine':
    decay = tf.keras.optimizers.schedules.CosineDecay(hp.learning_rate, decay_steps=hp.epochs)
    callbacks.append(tf.keras.callbacks.LearningRateScheduler(lambda epoch: float(decay(epoch))))
  if hp.lr_schedule == 'plateau':
    callbacks.append(
      tf.keras.callbacks.ReduceLROnPlateau(
        monitor='val_loss',
        factor=hp.plateau_factor,
        patience=hp.plateau_patience,
        min_lr=hp.learning_rate * 1e-3,
      )
    )
  if hp.early_stopping_patience:
    callbacks.append(
      tf.keras.callbacks.EarlyStopping(monitor='val_loss', patience=hp.early_stopping_patience)
    )
  if log_dir:
    callbacks.append(
      tf.keras.callbacks.TensorBoard(log_dir=log_dir, write_graph=False, profile_batch=0)
    )
  callbacks.append(EpochLogger(hp.epochs))
  return callbacks


def fit_best(
  model: tf.keras.Model,
  train_data: tf.data.Dataset,
  eval_data: tf.data.Dataset,
  hp: hparams_lib.HParams,
  steps_per_epoch: int,
  log_dir: str = '',
  class_weight: Optional[Dict[int, float]] = None,
) -> Tuple[Dict[str, List[float]], int]:
  """Fits, then restores the weights of the epoch with the lowest val_loss.

  `class_weight` ({label: weight}) weighs the training loss and metrics only: val_loss, which
  picks the epoch, stays unweighted.

  Returns the history and that epoch (1-based; 0 when no epoch had a finite val_loss, in which
  case the last weights stay).
  """
  best = BestWeights()
  history = model.fit(
    train_data,
    validation_data=eval_data,
    epochs=hp.epochs,
    steps_per_epoch=steps_per_epoch,
    class_weight=class_weight,
    verbose=0,
    callbacks=make_callbacks(hp, best, log_dir),
  ).history
  val_losses = history.get('val_loss', [])
  if best.weights is None:
    logging.warning('No epoch had a finite val_loss (%s): exporting the last weights', val_losses)
    return history, 0
  model.set_weights(best.weights)
  logging.info(
    'Restored the weights of epoch %d/%d (val_loss %.4f)', best.epoch, len(val_losses), best.loss
  )
  return history, best.epoch


def choose_operating_point(
  probabilities: np.ndarray, truth: np.ndarray, hp: hparams_lib.HParams
) -> operating_point.OperatingPoint:
  """The COVID threshold reaching hp.covid_target_sensitivity on these eval probabilities."""
  return operating_point.choose(
    probabilities[:, labels.COVID],
    truth == labels.COVID,
    hp.covid_target_sensitivity,
    labels.CLASS_NAMES[labels.COVID],
  )


def reference_images_data(
  tf_transform_output: tft.TFTransformOutput, image: image_spec.ImageSpec, batch_size: int
) -> Iterator[Tuple[tf.Tensor, np.ndarray]]:
  """Batches of (model input, kind) of components.ood_images' non-CXR images, through the
  serving input path (signatures.serving_model_input), eagerly."""
  tft_layer = tf_transform_output.transform_features_layer()
  generated = ood_images.generate()
  for start in range(0, len(generated), batch_size):
    kinds, pngs = zip(*generated[start : start + batch_size])
    yield signatures.serving_model_input(tft_layer, image, tf.constant(pngs)), np.array(kinds)


def fit_ood(
  model: tf.keras.Model,
  train_data: tf.data.Dataset,
  eval_split: ood.Observed,
  reference_data: Iterable[Tuple[tf.Tensor, np.ndarray]],
  model_run_dir: str,
) -> Tuple[ood.Detector, ood.OodRecord]:
  """Fits and chooses the out-of-distribution scores of `model` (temperature folded in) on the
  unaugmented train split, the eval split (observed before the temperature was folded: its
  logits are recomputed) and the reference non-CXR images (components.ood); writes the record
  into `model_run_dir`."""
  detector, record = ood.fit(
    observe(model, train_data),
    dataclasses.replace(eval_split, logits=logits_of(model, eval_split.features)),
    observe(model, reference_data),
  )
  ood.write(record, os.path.join(model_run_dir, ood.FILE))
  logging.info(
    'Out-of-distribution score: %s (AUROC eval vs %d reference non-CXR images: %s; '
    'appearance %.4f); thresholds %.6g and appearance %.6g accept %.4f of the %d eval images '
    '(target %g)%s',
    record.method,
    record.reference_images,
    ', '.join(f'{m} {a:.4f}' for m, a in record.auroc.items()),
    record.appearance['auroc'],
    record.threshold,
    record.appearance['threshold'],
    record.eval_accept_rate,
    record.eval_images,
    record.target_eval_accept_rate,
    f'; {record.note}' if record.note else '',
  )
  return detector, record


def export(
  model: tf.keras.Model,
  image: image_spec.ImageSpec,
  tf_transform_output: tft.TFTransformOutput,
  serving_model_dir: str,
  point: operating_point.OperatingPoint,
  calibration_record: Dict[str, float],
  regions: audit.Regions,
  detector: ood.Detector,
  ood_record: ood.OodRecord,
) -> None:
  """tf.saved_model.save with the serving signatures of components.signatures, applying the
  operating point and the out-of-distribution detector, hiding the audit's `regions` in the
  evaluation signature, and the Grad-CAM `explain` signature; the operating point
  (operating_point.FILE), the calibration record (CALIBRATION_ASSET), the regions
  (audit.REGIONS_FILE) and the out-of-distribution record (ood.ASSET) are stored beside them, so
  they travel with every copy of the model.

  Keras would also trace every layer's call functions into the SavedModel, to rebuild Keras
  layers at load time, which nothing here does (serving, TFMA and the CLI use the signatures):
  for ResNet152V2 that makes saving ~6x and loading ~3x slower, so those traces are skipped.
  """
  model_signatures = signatures.make_serving_signatures(
    model, tf_transform_output, image, point.threshold, regions, detector
  )
  model_signatures.update(signatures.make_explain_signature(model, tf_transform_output, image))
  with keras_saved_model_utils.keras_option_scope(save_traces=False):
    tf.saved_model.save(model, serving_model_dir, signatures=model_signatures)
  operating_point.write(point, serving_model_dir)
  for asset, record in (
    (CALIBRATION_ASSET, calibration_record),
    (audit.REGIONS_FILE, regions.to_json()),
  ):
    path = os.path.join(serving_model_dir, asset)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, 'w') as f:
      json.dump(record, f, indent=2, sort_keys=True)
  ood.write(ood_record, os.path.join(serving_model_dir, ood.ASSET))


def run_fn(fn_args: tfx.components.FnArgs) -> None:
  """Trains on fn_args.train_files, validates on fn_args.eval_files, exports the best epoch."""
  image = image_spec.ImageSpec.from_config(fn_args.custom_config)
  hp = hparams_lib.from_custom_config(fn_args.custom_config)
  settings = dict(image.to_config(), **hparams_lib.to_dict(hp))
  logging.info('TensorFlow %s, %s; hyperparameters: %s', tf.__version__, keras_version(), settings)
  if not keras_version().startswith('tf_keras'):
    raise RuntimeError(
      'tf.keras is Keras 3; set TF_USE_LEGACY_KERAS=1 before TensorFlow is '
      'imported (TFX 1.16 Transform layers need Keras 2).'
    )
  gpu_count = configure_gpus()
  if hp.seed is not None:
    tf.keras.utils.set_random_seed(hp.seed)
  strategy = make_strategy(gpu_count)
  mixed = use_mixed_precision(hp.mixed_precision, gpu_count)
  replicas = strategy.num_replicas_in_sync
  global_batch = hp.batch_size * replicas
  shard = input_context(strategy)
  logging.info(
    '%d GPU(s), %s with %d replica(s)%s, global batch %d, mixed precision %s, XLA %s',
    gpu_count,
    'MultiWorkerMirroredStrategy' if shard else type(strategy).__name__,
    replicas,
    f' on {shard.num_input_pipelines} workers, this one worker {shard.input_pipeline_id}'
    f' ({"the chief" if strategy.extended.should_checkpoint else "not the chief"})'
    if shard
    else '',
    global_batch,
    mixed,
    hp.xla,
  )

  tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
  train_counts = class_weights.count_labels(fn_args.train_files)
  train_count = int(train_counts.sum())
  if not train_count:
    raise ValueError(f'No training examples in {fn_args.train_files}')
  class_weight = class_weights.compute(hp.class_weight, train_counts)
  steps_per_epoch = hp.train_steps or fn_args.train_steps or math.ceil(train_count / global_batch)
  eval_steps = hp.eval_steps or fn_args.eval_steps
  logging.info(
    '%d training examples (%s), %d steps per epoch; eval steps: %s; class weights: %s',
    train_count,
    ', '.join(f'{n} {c}' for n, c in zip(labels.CLASS_NAMES, train_counts)),
    steps_per_epoch,
    eval_steps or 'whole split',
    ', '.join(f'{labels.CLASS_NAMES[c]} {w:.4g}' for c, w in class_weight.items())
    if class_weight
    else 'none',
  )
  data_args = dict(tf_transform_output=tf_transform_output, batch_size=global_batch, image=image)
  train_data = input_pipeline.make_dataset(
    fn_args.train_files,
    training=True,
    zoom_range=hp.zoom_range,
    seed=hp.seed,
    input_context=shard,
    **data_args,
  )
  eval_data = input_pipeline.make_dataset(
    fn_args.eval_files, training=False, input_context=shard, **data_args
  )
  if eval_steps:
    eval_data = eval_data.take(eval_steps)

  warm_start_from = fn_args.base_model if hp.warm_start else None
  if hp.warm_start and not warm_start_from:
    logging.info('Warm start requested but no blessed model yet: starting from %s', hp.weights)
  with strategy.scope(), dtype_policy(mixed):
    # The backbone's weights would be overwritten by the warm start: skip loading them.
    model = model_lib.build_model(
      image.size, hp, warm_start_from=warm_start_from, weights='none' if warm_start_from else None
    )
  history, best_epoch = fit_best(
    model,
    train_data,
    eval_data,
    hp,
    steps_per_epoch,
    log_dir=fn_args.model_run_dir,
    class_weight=class_weight,
  )

  # Every worker exports (TFX requires it); only the chief's outputs remain (worker_dir).
  with (
    worker_dir(fn_args.serving_model_dir, strategy) as serving_dir,
    worker_dir(fn_args.model_run_dir, strategy) as run_dir,
  ):
    exported = serving_copy(model, image, hp)
    eval_split = observe(
      exported, input_pipeline.make_dataset(fn_args.eval_files, training=False, **data_args)
    )
    record = calibrate(exported, eval_split.logits, eval_split.labels, run_dir)
    point = choose_operating_point(
      special.softmax(eval_split.logits / record['temperature'], axis=-1), eval_split.labels, hp
    )
    logging.info(
      'COVID operating point: P(COVID) > %g reaches sensitivity %.4f (%d/%d, target %g), '
      'specificity %.4f (%d/%d) on the eval split',
      point.threshold,
      point.sensitivity.value,
      point.sensitivity.successes,
      point.sensitivity.trials,
      point.target_sensitivity,
      point.specificity.value,
      point.specificity.successes,
      point.specificity.trials,
    )
    detector, ood_record = fit_ood(
      exported,
      input_pipeline.make_dataset(fn_args.train_files, training=False, **data_args),
      eval_split,
      reference_images_data(tf_transform_output, image, global_batch),
      run_dir,
    )
    export(
      exported,
      image,
      tf_transform_output,
      serving_dir,
      point,
      record,
      audit.Regions.from_config(fn_args.custom_config),
      detector,
      ood_record,
    )
    logging.info('Exported the model of epoch %d to %s', best_epoch, serving_dir)
    paths = training_report.write_report(
      run_dir,
      history,
      best_epoch=best_epoch,
      hparams=settings,
      train_examples=train_count,
      **class_weights.record(train_counts, class_weight),
      keras=keras_version(),
      operating_point=point.to_json(),
    )
    logging.info('Training report: %s', ', '.join(sorted(paths.values())))
  wait_for_all_workers(strategy)
