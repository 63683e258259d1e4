"""`cxr predict` throughput: batched serving calls vs one call per image.

Same model and images for both, in one process: ResNet152V2 (components.model, random weights)
exported with a serving_default(image_bytes) that decodes and resizes with components.image_ops,
and generated 299 px grayscale PNGs (the Kaggle dataset's size). Baseline: pipeline.predict with
batch size 1 (a per-image loop); ours: its default batch (BATCH_SIZE). Timed after a warm-up call;
the one-time model load is reported apart.
"""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import glob
import tempfile
import time

import tensorflow as tf

from components import demo_data
from components import image_ops
from components import model as model_lib
from pipeline import predict


def _export(export_dir: str, image_size: int) -> None:
  model = model_lib.build_model(image_size, weights='none')

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='image_bytes')])
  def serve(image_bytes):
    pixels = tf.map_fn(
      lambda b: image_ops.decode_resized(b, image_size, 1),
      image_bytes,
      fn_output_signature=tf.TensorSpec([image_size, image_size, 1], tf.uint8),
    )
    probabilities = model(image_ops.model_input(pixels, None, 'resnet_v2'))
    class_id = tf.argmax(probabilities, axis=-1)
    return {
      'probabilities': probabilities,
      'class_id': class_id,
      'class_name': tf.gather(tf.constant(['COVID', 'NORMAL', 'VIRAL PNEUMONIA']), class_id),
    }

  tf.saved_model.save(model, export_dir, signatures={'serving_default': serve})


def _images_per_s(serve, paths, batch_size: int) -> float:
  list(predict.classify(serve, paths[:batch_size], batch_size=batch_size))  # warm-up
  start = time.perf_counter()
  predictions = list(predict.classify(serve, paths, batch_size=batch_size))
  elapsed = time.perf_counter() - start
  assert not any(p.error for p in predictions)
  return len(paths) / elapsed


def run(quick: bool = False) -> dict:
  """Builds the model and images, measures both; returns the figures."""
  image_size, per_class = (64, 6) if quick else (224, 16)
  cores = os.cpu_count()
  with tempfile.TemporaryDirectory() as work_dir:
    demo_data.generate(
      work_dir,
      train_per_class=0,
      test_per_class=per_class,
      min_size=299,
      max_size=299,
      processes=cores,
    )
    paths = sorted(glob.glob(os.path.join(work_dir, 'Test', '*', '*.png')))
    model_dir = os.path.join(work_dir, 'model')
    _export(model_dir, image_size)
    start = time.perf_counter()
    serve = predict.load_signature(model_dir)
    load_seconds = time.perf_counter() - start
    single = _images_per_s(serve, paths, 1)
    batched = _images_per_s(serve, paths, predict.BATCH_SIZE)
  print(
    f'predict ({len(paths)} PNGs 299 px -> ResNet152V2 at {image_size} px, {cores} cores, '
    f'load average {os.getloadavg()[0]:.1f}): '
    f'one call per image {single:.2f} images/s, batches of {predict.BATCH_SIZE} '
    f'{batched:.2f} images/s ({batched / single:.2f}x); model load {load_seconds:.1f} s'
  )
  return {
    'predict.images_per_s': round(batched, 2),
    'predict.per_image_calls_images_per_s': round(single, 2),
    'predict.batch_speedup': round(batched / single, 2),
    'predict.model_load_s': round(load_seconds, 1),
    'predict.image_size': image_size,
    'predict.cores': cores,
  }
