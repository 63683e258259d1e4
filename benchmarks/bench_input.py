"""Training input throughput (the seed notebook's ImageDataGenerator vs Transform + tf.data) and
the one-time Transform against the floor of decoding the same images with PIL.

Same generated 1024 px grayscale PNGs for all, in one process, each pair in interleaved rounds
(benchmarks/rounds.py: median, min and max of each rate and of the per-round ratio):
- Transform: TFX's Transform executor (benchmarks/tfx_transform.py: the pipeline's
  preprocessing_fn, the train split analyzed and transformed, Beam in this process, TensorFlow on
  every core) on raw examples holding each image TRANSFORM_COPIES times, executor start-up
  included, vs the floor: a multiprocessing Pool (fork) on every core reads and fully decodes the
  same PNG files as often with PIL. Each round also transforms one copy of each image, so that
  (n_large - n_small) / (t_large - t_small) gives the marginal rate, without the executor's fixed
  cost (graph tracing, Beam set-up, SavedModels written and loaded), and runs the Transform's
  TensorFlow work on each image (preprocessing.stored_pngs) alone on the PNGs: the rate no
  Transform of these images can pass on this machine, whatever Beam does;
- input: the seed's tf_keras ImageDataGenerator(rescale=1/255, featurewise_center=True,
  zoom_range=0.07), fitted on a sample, flow_from_directory(224 px, batch 32,
  class_mode='sparse'), one epoch, vs ours: make_dataset(training=True, batch 32) over the
  one-copy Transform's materialized examples, several epochs (one takes about a second). Each
  round starts a new iterator of ours, so that no prefetching runs during the seed's epoch; both
  are timed after one warm-up batch (our tf.data graph is built and traced then).
"""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import glob
import logging
import pathlib
import shutil
import tempfile
import time
from typing import Sequence

import tensorflow as tf
import tensorflow_transform as tft

from benchmarks import floors
from benchmarks import rounds
from benchmarks import seed_generator
from benchmarks import tfx_transform
from components import demo_data
from components import input_pipeline
from components import preprocessing
from components.image_spec import ImageSpec

IMAGE_SIZE = 224
BATCH_SIZE = 32
TRANSFORM_COPIES = 4  # 1,200 records: the executor's fixed cost is not most of the run
OPS_BATCH = 100  # images per call when the TensorFlow work is timed alone
CUSTOM_CONFIG = {'image_size': IMAGE_SIZE, 'image_channels': 1}


def _transform_seconds(raw_path: str, output_dir: str) -> float:
  """Seconds of one Transform of the raw examples into `output_dir`."""
  start = time.perf_counter()
  tfx_transform.run({'train': raw_path}, output_dir, CUSTOM_CONFIG)
  return time.perf_counter() - start


def _stored_pngs_images_per_s(encoded: Sequence[bytes]) -> float:
  """The Transform's TensorFlow work on each image alone (preprocessing.stored_pngs: decode,
  resize, PNG), in batches of OPS_BATCH, TensorFlow on every core, after a traced first batch;
  images/s."""
  image = ImageSpec.from_config(CUSTOM_CONFIG)
  convert = tf.function(
    lambda batch: preprocessing.stored_pngs(batch, image),
    input_signature=[tf.TensorSpec([None], tf.string)],
  )
  batches = [tf.constant(encoded[i : i + OPS_BATCH]) for i in range(0, len(encoded), OPS_BATCH)]
  convert(batches[0])
  start = time.perf_counter()
  for batch in batches:
    convert(batch)
  return len(encoded) / (time.perf_counter() - start)


def _seed_images_per_s(flow, num_images: int) -> float:
  """One epoch of the seed notebook's generator, images/s."""
  start = time.perf_counter()
  for _ in range(len(flow)):
    next(flow)
  return num_images / (time.perf_counter() - start)


def _our_images_per_s(dataset, steps: int) -> float:
  """`steps` batches of a new iterator over make_dataset(training=True), images/s."""
  iterator = iter(dataset)
  next(iterator)  # warm-up batch
  start = time.perf_counter()
  for _ in range(steps):
    next(iterator)
  return steps * BATCH_SIZE / (time.perf_counter() - start)


def run(quick: bool = False) -> dict:
  """Builds the images, measures the Transform and both inputs; returns the figures."""
  per_class, size, epochs = (16, 512, 3) if quick else (100, 1024, 10)
  cores = os.cpu_count()
  with tempfile.TemporaryDirectory() as work_dir:
    demo_data.generate(
      work_dir,
      train_per_class=per_class,
      test_per_class=0,
      min_size=size,
      max_size=size,
      processes=cores,
    )
    train_dir = os.path.join(work_dir, 'Train')
    png_paths = sorted(glob.glob(os.path.join(train_dir, '*', '*.png')))
    num_images = len(png_paths)
    raw_bytes = sum(os.path.getsize(p) for p in png_paths)
    logging.info(
      'bench_input: %d PNGs of %d px (%.0f KB each), %d cores',
      num_images,
      size,
      raw_bytes / num_images / 1024,
      cores,
    )
    raw_small, raw_large = (os.path.join(work_dir, f'raw_{n}.tfrecord') for n in ('small', 'large'))
    n_small = tfx_transform.write_class_folders(train_dir, raw_small)
    n_large = tfx_transform.write_class_folders(train_dir, raw_large, TRANSFORM_COPIES)
    transform_dir = os.path.join(work_dir, 'transform')
    small_seconds, large_seconds, ops_rates = [], [], []
    encoded = [pathlib.Path(path).read_bytes() for path in png_paths]

    def transform_both() -> float:
      """The one-copy Transform, the TensorFlow work alone and the TRANSFORM_COPIES Transform;
      images/s of the latter. The first one-copy output stays in transform_dir for the input
      benchmark."""
      small_dir = tempfile.mkdtemp(dir=work_dir) if small_seconds else transform_dir
      small_seconds.append(_transform_seconds(raw_small, small_dir))
      ops_rates.append(_stored_pngs_images_per_s(encoded))
      large_dir = tempfile.mkdtemp(dir=work_dir)
      large_seconds.append(_transform_seconds(raw_large, large_dir))
      for output_dir in {small_dir, large_dir} - {transform_dir}:
        shutil.rmtree(output_dir)
      return n_large / large_seconds[-1]

    transform_rates, floor_rates = rounds.interleaved(
      transform_both,
      lambda: floors.pool_rate(floors.pil_decode, png_paths * TRANSFORM_COPIES, chunksize=8),
      rounds.ROUNDS,
      f'Transform of {n_large} records ({num_images} PNGs of {size} px x {TRANSFORM_COPIES}) vs '
      f'the decode floor (PIL, {cores} processes)',
    )
    marginal_rates = [
      (n_large - n_small) / (large - small) for small, large in zip(small_seconds, large_seconds)
    ]
    pattern = os.path.join(
      transform_dir, tfx_transform.TRANSFORMED_EXAMPLES_DIR, 'Split-train', '*'
    )
    bytes_per_example = sum(os.path.getsize(p) for p in glob.glob(pattern)) / num_images

    flow = seed_generator.seed_flow(train_dir, IMAGE_SIZE, BATCH_SIZE)
    next(flow)  # warm-up batch
    dataset = input_pipeline.make_dataset(
      pattern,
      tft.TFTransformOutput(os.path.join(transform_dir, tfx_transform.TRANSFORM_GRAPH_DIR)),
      BATCH_SIZE,
      training=True,
      zoom_range=seed_generator.ZOOM_RANGE,
    )
    steps = epochs * -(-num_images // BATCH_SIZE)
    our_rates, seed_rates = rounds.interleaved(
      lambda: _our_images_per_s(dataset, steps),
      lambda: _seed_images_per_s(flow, num_images),
      rounds.ROUNDS,
      f'training input, {IMAGE_SIZE} px, batch {BATCH_SIZE}: ours vs the seed ImageDataGenerator',
    )

  figures = {
    **rounds.figures(
      'input.images_per_s',
      'input.seed_generator_images_per_s',
      'input.speedup',
      our_rates,
      seed_rates,
    ),
    **rounds.figures(
      'transform.images_per_s',
      'transform.decode_floor_images_per_s',
      'transform.vs_decode_floor',
      transform_rates,
      floor_rates,
    ),
    **rounds.spread('transform.marginal_images_per_s', marginal_rates, 1),
    **rounds.spread('transform.tf_ops_images_per_s', ops_rates, 1),
    **rounds.spread(
      'transform.tf_ops_vs_decode_floor', [o / f for o, f in zip(ops_rates, floor_rates)], 2
    ),
    **rounds.spread(
      'transform.marginal_vs_decode_floor',
      [m / f for m, f in zip(marginal_rates, floor_rates)],
      2,
    ),
    'transform.n_small': n_small,
    'transform.n_large': n_large,
    'transform.bytes_per_example': round(bytes_per_example),
    'input.rounds': rounds.ROUNDS,
    'input.cores': cores,
  }
  print(
    f'input ({num_images} PNGs {size}x{size} gray -> {IMAGE_SIZE} px, batch {BATCH_SIZE}, '
    f'{cores} cores, median (min-max) of {rounds.ROUNDS} rounds): seed ImageDataGenerator '
    f'{rounds.summary(figures, "input.seed_generator_images_per_s")} images/s, ours '
    f'{rounds.summary(figures, "input.images_per_s")} images/s per epoch '
    f'({rounds.summary(figures, "input.speedup")}x); one-time Transform '
    f'{rounds.summary(figures, "transform.images_per_s")} images/s, '
    f'{rounds.summary(figures, "transform.vs_decode_floor")}x the decode floor (marginal '
    f'{rounds.summary(figures, "transform.marginal_images_per_s")} images/s, '
    f'{rounds.summary(figures, "transform.marginal_vs_decode_floor")}x; its TensorFlow work alone '
    f'{rounds.summary(figures, "transform.tf_ops_vs_decode_floor")}x), '
    f'{bytes_per_example / 1024:.1f} KB per transformed example '
    f'(raw PNG {raw_bytes / num_images / 1024:.1f} KB)'
  )
  return figures


if __name__ == '__main__':
  logging.basicConfig(level=logging.INFO)
  run()
