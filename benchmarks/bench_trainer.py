"""Training throughput of ResNet152V2 on this machine's CPU, and how long each step waits for input.

One model (components.model.build_model, 'recommended' preset, random weights, 64 px, batch 16),
three inputs in one process, each warmed up, then timed in interleaved rounds of a few steps:
- compute only: one in-memory batch again and again (the ceiling);
- ours: the Transform's materialized examples through input_pipeline.make_dataset;
- seed: the notebook's ImageDataGenerator(featurewise_center, zoom_range=0.07) on the PNG files.
Each step is split into the time spent in next(iterator) (input wait) and in train_on_batch.
"""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import logging
import tempfile
import time
from typing import Iterator

import numpy as np
import tensorflow as tf

from benchmarks import seed_generator
from benchmarks import tfx_transform
from components import demo_data
from components import hparams
from components import input_pipeline
from components import model as model_lib
from components import trainer
from components.image_spec import ImageSpec

IMAGE_SIZE = 64
BATCH_SIZE = 16
SOURCE_SIZE = 256  # generated PNGs, resized to IMAGE_SIZE by the Transform / the generator


class _StepTimer:
  """Time of train_on_batch steps split into input wait (next()) and compute."""

  def __init__(self, model: tf.keras.Model, batches: Iterator):
    self._model, self._batches = model, batches
    self.wait = self.compute = 0.0
    self.images = 0
    model.train_on_batch(*next(batches))  # warm-up: traces, fills prefetch buffers

  def steps(self, count: int) -> None:
    for _ in range(count):
      start = time.perf_counter()
      images, labels_ = next(self._batches)
      fetched = time.perf_counter()
      self._model.train_on_batch(images, labels_)  # returns numbers: the step has finished
      self.wait += fetched - start
      self.compute += time.perf_counter() - fetched
      self.images += len(images)

  def images_per_s(self) -> float:
    return self.images / (self.wait + self.compute)

  def wait_fraction(self) -> float:
    return self.wait / (self.wait + self.compute)


def _repeat(batch):
  while True:
    yield batch


def _seed_generator(train_dir: str):
  """The notebook's input: featurewise-centred, zoomed RGB batches straight from the PNG files."""
  flow = seed_generator.seed_flow(train_dir, IMAGE_SIZE, BATCH_SIZE)
  for images, labels_ in flow:  # int64 labels and full batches, as ours: no retracing
    if len(images) == BATCH_SIZE:
      yield images, labels_.astype(np.int64)


def run(quick: bool = False) -> dict:
  """Builds the data and the model, times the three inputs; returns the figures."""
  per_class, rounds, steps_per_round = (8, 2, 2) if quick else (48, 6, 4)
  cores = os.cpu_count()
  image = ImageSpec(size=IMAGE_SIZE)
  hp = hparams.resolve('recommended', {'weights': 'none', 'batch_size': BATCH_SIZE})
  with tempfile.TemporaryDirectory() as work_dir:
    demo_data.generate(
      work_dir,
      train_per_class=per_class,
      test_per_class=0,
      min_size=SOURCE_SIZE,
      max_size=SOURCE_SIZE,
      processes=cores,
    )
    train_dir = os.path.join(work_dir, 'Train')
    raw_path = os.path.join(work_dir, 'raw.tfrecord')
    tfx_transform.write_class_folders(train_dir, raw_path)
    transform_dir = os.path.join(work_dir, 'transform')
    tf_transform_output = tfx_transform.run(
      {'train': raw_path}, transform_dir, custom_config=image.to_config()
    )
    ours = input_pipeline.make_dataset(
      os.path.join(transform_dir, tfx_transform.TRANSFORMED_EXAMPLES_DIR, 'Split-train', '*'),
      tf_transform_output,
      BATCH_SIZE,
      training=True,
      image=image,
      zoom_range=hp.zoom_range,
      seed=hp.seed,
    )

    with trainer.make_strategy(0).scope():
      model = model_lib.build_model(image.size, hp)
    start = time.perf_counter()
    timers = {
      'compute': _StepTimer(model, _repeat(next(iter(ours)))),
      'ours': _StepTimer(model, iter(ours)),
      'seed': _StepTimer(model, _seed_generator(train_dir)),
    }
    logging.info('bench_trainer: model traced and warmed up in %.0f s', time.perf_counter() - start)
    for round_ in range(rounds):  # interleaved, so that load from other processes hits all three
      for name in list(timers) if round_ % 2 == 0 else reversed(list(timers)):
        timers[name].steps(steps_per_round)
    compute_rate = timers['compute'].images_per_s()
    our_rate, our_wait = timers['ours'].images_per_s(), timers['ours'].wait_fraction()
    seed_rate, seed_wait = timers['seed'].images_per_s(), timers['seed'].wait_fraction()

  figures = {
    'trainer.images_per_s': round(our_rate, 2),
    'trainer.input_wait_fraction': round(our_wait, 4),
    'trainer.compute_only_images_per_s': round(compute_rate, 2),
    'trainer.seed_input_images_per_s': round(seed_rate, 2),
    'trainer.seed_input_wait_fraction': round(seed_wait, 4),
    'trainer.image_size': IMAGE_SIZE,
    'trainer.cores': cores,
  }
  print(
    f'trainer (ResNet152V2 {IMAGE_SIZE} px, batch {BATCH_SIZE}, CPU, {cores} cores, '
    f'{rounds * steps_per_round} steps per input): compute only {compute_rate:.1f} images/s; '
    f'our input {our_rate:.1f} images/s, {our_wait:.1%} of the time waiting for input; '
    f'seed ImageDataGenerator {seed_rate:.1f} images/s, {seed_wait:.1%} waiting'
  )
  return figures


if __name__ == '__main__':
  logging.basicConfig(level=logging.INFO)
  run()
