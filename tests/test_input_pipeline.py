"""make_dataset over a real Transform output: contents, determinism, augmentation on train only."""

import glob
import io
import os

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf
from tf_keras.preprocessing import image as keras_image

from benchmarks import tfx_transform
from components import features
from components import image_ops
from components import input_pipeline
from components.image_spec import ImageSpec
from components.ingestion import example_encoding

# One worker runs the whole module under `pytest -n 2 --dist loadgroup`: its Transform fixture
# runs once.
pytestmark = pytest.mark.xdist_group('input_pipeline')

SIZE = 32
NUM_TRAIN = 10


def _png(seed: int) -> bytes:
  rng = np.random.default_rng(seed)
  rows, cols = np.mgrid[0:40, 0:48]
  image = 120 + 60 * np.sin(cols / (3.0 + seed)) * np.cos(rows / 4.0) + rng.normal(0, 20, (40, 48))
  buffer = io.BytesIO()
  Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(buffer, 'PNG')
  return buffer.getvalue()


@pytest.fixture(scope='module')
def transformed(tmp_path_factory):
  """(TFTransformOutput, {split: transformed file pattern}) of 10 train and 4 eval images."""
  raw_dir = tmp_path_factory.mktemp('raw')
  raw = {}
  for split, seeds in (('train', range(NUM_TRAIN)), ('eval', range(100, 104))):
    raw[split] = str(raw_dir / f'{split}.gz')
    with tf.io.TFRecordWriter(raw[split], options='GZIP') as writer:
      for seed in seeds:
        writer.write(example_encoding.serialize(tfx_transform.raw_features(_png(seed), seed % 3)))
  output_dir = str(tmp_path_factory.mktemp('transform'))
  output = tfx_transform.run(raw, output_dir, {'image_size': SIZE, 'image_channels': 1})
  patterns = {
    split: os.path.join(output_dir, tfx_transform.TRANSFORMED_EXAMPLES_DIR, f'Split-{split}', '*')
    for split in raw
  }
  return output, patterns


def _collect(dataset, batches=None):
  dataset = dataset.take(batches) if batches else dataset
  images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
  return np.concatenate(images), np.concatenate(labels)


def _materialized(output, pattern):
  """Decoded pixels, means and labels of the transformed files, in file order."""
  spec = output.transformed_feature_spec()
  examples = [
    tf.io.parse_single_example(r, spec)
    for r in tf.data.TFRecordDataset(sorted(glob.glob(pattern)), compression_type='GZIP')
  ]
  pixels = np.stack([image_ops.decode_pixels(e[features.PIXELS_XF], 1).numpy() for e in examples])
  means = np.stack([e[features.PIXEL_MEAN_XF].numpy() for e in examples])
  return pixels, means, np.array([int(e[features.LABEL_XF]) for e in examples])


def test_eval_input_is_one_unaugmented_centred_pass(transformed):
  output, patterns = transformed
  dataset = input_pipeline.make_dataset(patterns['eval'], output, batch_size=3, training=False)
  images, labels = _collect(dataset)
  pixels, means, expected_labels = _materialized(output, patterns['eval'])
  assert images.shape == (4, SIZE, SIZE, 3) and images.dtype == np.float32
  assert labels.dtype == np.int64
  np.testing.assert_array_equal(labels, expected_labels)
  expected = np.repeat(pixels / 255.0 - means[:, np.newaxis, np.newaxis, :], 3, axis=-1)
  np.testing.assert_allclose(images, expected, atol=1e-6)
  np.testing.assert_array_equal(_collect(dataset)[0], images)  # same again


def test_resnet_v2_normalization(transformed):
  output, patterns = transformed
  images, _ = _collect(
    input_pipeline.make_dataset(
      patterns['eval'], output, batch_size=4, training=False, image=ImageSpec(SIZE, 1, 'resnet_v2')
    )
  )
  pixels, _, _ = _materialized(output, patterns['eval'])
  np.testing.assert_allclose(images, np.repeat(pixels / 127.5 - 1.0, 3, axis=-1), atol=1e-6)


def test_training_differs_from_eval_only_by_shuffle_and_zoom(transformed):
  output, patterns = transformed
  unaugmented, labels = _collect(
    input_pipeline.make_dataset(patterns['train'], output, batch_size=5, training=False)
  )
  no_zoom, no_zoom_labels = _collect(
    input_pipeline.make_dataset(
      patterns['train'],
      output,
      batch_size=5,
      training=True,
      zoom_range=0.0,
      shuffle_buffer=1,
      deterministic=True,
    ),
    2,
  )
  np.testing.assert_array_equal(no_zoom, unaugmented)
  np.testing.assert_array_equal(no_zoom_labels, labels)
  zoomed, zoomed_labels = _collect(
    input_pipeline.make_dataset(
      patterns['train'],
      output,
      batch_size=5,
      training=True,
      shuffle_buffer=1,
      seed=3,
      deterministic=True,
    ),
    2,
  )
  np.testing.assert_array_equal(zoomed_labels, labels)
  per_image_change = np.abs(zoomed - unaugmented).mean(axis=(1, 2, 3))
  assert (per_image_change > 1e-3).all(), per_image_change


def test_training_is_shuffled_repeated_and_reproducible(transformed):
  output, patterns = transformed
  make = lambda seed: input_pipeline.make_dataset(
    patterns['train'], output, batch_size=4, training=True, seed=seed, deterministic=True
  )
  first, first_labels = _collect(make(7), 6)  # 24 images: more than one epoch
  assert first.shape == (24, SIZE, SIZE, 3)
  np.testing.assert_array_equal(
    np.bincount(first_labels[:NUM_TRAIN]), np.bincount(np.arange(NUM_TRAIN) % 3)
  )
  again, again_labels = _collect(make(7), 6)
  np.testing.assert_array_equal(again, first)
  np.testing.assert_array_equal(again_labels, first_labels)
  other, _ = _collect(make(8), 6)
  assert not np.array_equal(other, first)
  _, unshuffled_labels = _collect(
    input_pipeline.make_dataset(patterns['train'], output, batch_size=NUM_TRAIN, training=False)
  )
  assert not np.array_equal(first_labels[:NUM_TRAIN], unshuffled_labels)


@pytest.mark.parametrize('zx,zy', [(0.93, 1.07), (1.05, 0.95), (1.0, 1.0)])
def test_zoom_matches_keras_image_data_generator(zx, zy):
  image = np.random.default_rng(0).uniform(0, 255, (SIZE, SIZE, 1)).astype(np.float32)
  keras = keras_image.ImageDataGenerator().apply_transform(image, {'zx': zx, 'zy': zy})
  ours = input_pipeline.zoom(image[np.newaxis], tf.constant([[zx, zy]]))[0].numpy()
  np.testing.assert_allclose(ours, keras, atol=1e-3)


def test_random_zoom_factors_stay_in_range():
  ramp = np.tile(np.arange(SIZE, dtype=np.float32), (64, SIZE, 1))[
    ..., np.newaxis
  ]  # value = column
  zoomed = input_pipeline.random_zoom(ramp, 0.07, tf.constant([1, 2])).numpy()
  centre = (SIZE - 1) / 2
  factors = (zoomed[:, 0, SIZE - 3, 0] - centre) / (SIZE - 3 - centre)  # not clamped at the edge
  assert factors.min() >= 0.93 - 1e-4 and factors.max() <= 1.07 + 1e-4
  assert factors.max() - factors.min() > 0.07  # really random across the batch


def test_make_dataset_errors(transformed):
  output, _ = transformed
  with pytest.raises(FileNotFoundError, match='No transformed examples match'):
    input_pipeline.make_dataset('/nonexistent/Split-train/*', output, 2, training=True)


def _worker(index, workers=2):
  return tf.distribute.InputContext(workers, index, workers)


def _as_set(images):
  return {image.tobytes() for image in images}


def test_each_worker_reads_every_nth_record_of_a_single_file(transformed):
  """The Transform wrote one file per split: two workers take alternate records, in a fixed
  order, so their shards partition the split, in eval and in training (one epoch each)."""
  output, patterns = transformed
  assert len(glob.glob(patterns['train'])) == 1
  everything, labels = _collect(
    input_pipeline.make_dataset(patterns['train'], output, batch_size=NUM_TRAIN, training=False)
  )
  for index in range(2):
    sharded = input_pipeline.make_dataset(
      patterns['train'], output, batch_size=NUM_TRAIN, training=False, input_context=_worker(index)
    )
    assert (
      sharded.options().experimental_distribute.auto_shard_policy
      == tf.data.experimental.AutoShardPolicy.OFF
    )
    images, shard_labels = _collect(sharded)
    np.testing.assert_array_equal(images, everything[index::2])
    np.testing.assert_array_equal(shard_labels, labels[index::2])
    training = input_pipeline.make_dataset(
      patterns['train'],
      output,
      batch_size=NUM_TRAIN // 2,
      training=True,
      zoom_range=0.0,
      input_context=_worker(index),
    )
    epoch, _ = _collect(training, 1)
    assert _as_set(epoch) == _as_set(everything[index::2])


def test_with_enough_files_each_worker_reads_whole_files(transformed, tmp_path):
  output, patterns = transformed
  [path] = glob.glob(patterns['train'])
  records = list(tf.data.TFRecordDataset(path, compression_type='GZIP').as_numpy_iterator())
  parts = (records[:6], records[6:])
  for number, part in enumerate(parts):
    with tf.io.TFRecordWriter(str(tmp_path / f'part-{number}.gz'), options='GZIP') as writer:
      for record in part:
        writer.write(record)
  everything, _ = _collect(
    input_pipeline.make_dataset(path, output, batch_size=NUM_TRAIN, training=False)
  )
  for index, part in enumerate(parts):
    images, _ = _collect(
      input_pipeline.make_dataset(
        str(tmp_path / 'part-*.gz'),
        output,
        batch_size=NUM_TRAIN,
        training=False,
        input_context=_worker(index),
      )
    )
    first = 0 if index == 0 else len(parts[0])
    np.testing.assert_array_equal(images, everything[first : first + len(part)])
