"""Training input throughput: the seed notebook's ImageDataGenerator vs Transform + tf.data.

Same generated 1024 px grayscale PNGs for both, in one process:
- seed: tf_keras ImageDataGenerator(rescale=1/255, featurewise_center=True, zoom_range=0.07),
  fitted on a sample, flow_from_directory(224 px, batch 32, class_mode='sparse'), one epoch;
- ours: the one-time Transform (preprocessing_fn on tf.Transform/Beam, timed as the transform
  cost), then make_dataset(training=True, batch 32) over its materialized examples, timed over
  several epochs (one takes about a second) so that noise from other processes averages out.
Both are timed after one warm-up batch (our tf.data graph is built and traced then).
"""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import glob
import logging
import tempfile
import time

from benchmarks import seed_generator
from benchmarks import tfx_transform
from components import demo_data
from components import input_pipeline
from components import labels

IMAGE_SIZE = 224
BATCH_SIZE = 32


def _seed_images_per_s(train_dir: str, num_images: int) -> float:
  """One epoch of the seed notebook's generator, images/s."""
  flow = seed_generator.seed_flow(train_dir, IMAGE_SIZE, BATCH_SIZE)
  next(flow)  # warm-up batch
  start = time.perf_counter()
  for _ in range(len(flow)):
    next(flow)
  return num_images / (time.perf_counter() - start)


def _our_images_per_s(pattern: str, tf_transform_output, num_images: int, epochs: int) -> float:
  """`epochs` epochs of make_dataset(training=True), images/s."""
  dataset = input_pipeline.make_dataset(
    pattern, tf_transform_output, BATCH_SIZE, training=True, zoom_range=seed_generator.ZOOM_RANGE
  )
  steps = epochs * -(-num_images // BATCH_SIZE)
  iterator = iter(dataset)
  next(iterator)  # warm-up batch
  start = time.perf_counter()
  for _ in range(steps):
    next(iterator)
  return steps * BATCH_SIZE / (time.perf_counter() - start)


def run(quick: bool = False) -> dict:
  """Builds the images, measures both pipelines; returns the figures."""
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
    num_images = per_class * labels.NUM_CLASSES
    raw_bytes = sum(os.path.getsize(p) for p in glob.glob(os.path.join(train_dir, '*', '*.png')))
    logging.info(
      'bench_input: %d PNGs of %d px (%.0f KB each), %d cores',
      num_images,
      size,
      raw_bytes / num_images / 1024,
      cores,
    )

    seed_rate = _seed_images_per_s(train_dir, num_images)

    raw_path = os.path.join(work_dir, 'raw_examples.gz')
    tfx_transform.write_class_folders(train_dir, raw_path)
    transform_dir = os.path.join(work_dir, 'transform')
    start = time.perf_counter()
    tf_transform_output = tfx_transform.run(
      {'train': raw_path},
      transform_dir,
      custom_config={'image_size': IMAGE_SIZE, 'image_channels': 1},
    )
    transform_rate = num_images / (time.perf_counter() - start)
    pattern = os.path.join(
      transform_dir, tfx_transform.TRANSFORMED_EXAMPLES_DIR, 'Split-train', '*'
    )
    bytes_per_example = sum(os.path.getsize(p) for p in glob.glob(pattern)) / num_images

    our_rate = _our_images_per_s(pattern, tf_transform_output, num_images, epochs)

  figures = {
    'input.images_per_s': round(our_rate, 1),
    'input.seed_generator_images_per_s': round(seed_rate, 1),
    'input.speedup': round(our_rate / seed_rate, 2),
    'transform.images_per_s': round(transform_rate, 1),
    'transform.bytes_per_example': round(bytes_per_example),
    'input.cores': cores,
  }
  print(
    f'input ({num_images} PNGs {size}x{size} gray -> {IMAGE_SIZE} px, batch {BATCH_SIZE}, '
    f'{cores} cores): seed ImageDataGenerator {seed_rate:.1f} images/s, ours {our_rate:.1f} '
    f'images/s per epoch ({our_rate / seed_rate:.1f}x); one-time Transform '
    f'{transform_rate:.1f} images/s, {bytes_per_example / 1024:.1f} KB per transformed example '
    f'(raw PNG {raw_bytes / num_images / 1024:.1f} KB)'
  )
  return figures


if __name__ == '__main__':
  logging.basicConfig(level=logging.INFO)
  run()
