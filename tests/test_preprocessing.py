"""image_ops.decode_resized on every supported format, and preprocessing_fn run by tf.Transform."""

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
from components.ingestion import example_encoding
from components.ingestion import image_check

# One worker runs the whole module under `pytest -n 2 --dist loadgroup`: its Transform fixture
# runs once.
pytestmark = pytest.mark.xdist_group('preprocessing')

SIZE = 32


def _texture(shape, seed):
  """Smooth pattern plus noise in [0, 1], so that resampling differences would show."""
  rng = np.random.default_rng(seed)
  rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
  base = (np.sin(cols / 5.0) + np.cos(rows / 7.0) + 2.0) / 4.0
  if len(shape) == 3:
    base = base[..., np.newaxis] * np.linspace(0.5, 1.0, shape[2])
  return np.clip(base + rng.normal(0, 0.05, shape), 0, 1)


def _encode(image: Image.Image, image_format: str) -> bytes:
  buffer = io.BytesIO()
  image.save(buffer, image_format)
  return buffer.getvalue()


def _uint8(shape, seed):
  return (_texture(shape, seed) * 255).round().astype(np.uint8)


_GRAY = Image.fromarray(_uint8((48, 64), 1))
_RGB = Image.fromarray(_uint8((48, 64, 3), 2))
_GRAY16 = Image.fromarray((_texture((48, 64), 3) * 65535).round().astype(np.uint16))

# name -> encoded bytes. Expectations come from PIL decoding the same bytes.
FORMATS = {
  'png_gray8': _encode(_GRAY, 'PNG'),
  'png_gray16': _encode(_GRAY16, 'PNG'),
  'png_gray_alpha': _encode(_GRAY.convert('LA'), 'PNG'),
  'png_rgb': _encode(_RGB, 'PNG'),
  'png_rgba': _encode(Image.fromarray(_uint8((48, 64, 4), 4)), 'PNG'),
  'png_palette': _encode(_RGB.convert('P', palette=Image.ADAPTIVE, colors=64), 'PNG'),
  'jpeg_gray': _encode(_GRAY, 'JPEG'),
  'jpeg_rgb': _encode(_RGB, 'JPEG'),
  'bmp_gray': _encode(_GRAY, 'BMP'),
  'bmp_rgb': _encode(_RGB, 'BMP'),
}


def _pil_expected(encoded: bytes, channels: int) -> np.ndarray:
  """PIL decode (16-bit scaled by 255/65535), convert to L/RGB, BILINEAR resize: float [S, S, C]."""
  image = Image.open(io.BytesIO(encoded))
  if image.mode.startswith('I;16'):
    scaled = Image.fromarray(np.asarray(image).astype(np.float32) * (255.0 / 65535.0), 'F')
    resized = np.asarray(scaled.resize((SIZE, SIZE), Image.BILINEAR))[..., np.newaxis]
    return np.repeat(resized, channels, axis=-1)
  converted = image.convert('L' if channels == 1 else 'RGB')
  return np.asarray(converted.resize((SIZE, SIZE), Image.BILINEAR), np.float32).reshape(
    SIZE, SIZE, channels
  )


@pytest.mark.parametrize('channels', [1, 3])
@pytest.mark.parametrize('name', sorted(FORMATS))
def test_decode_resized_matches_pil(name, channels):
  pixels = image_ops.decode_resized(tf.constant(FORMATS[name]), SIZE, channels).numpy()
  assert pixels.shape == (SIZE, SIZE, channels) and pixels.dtype == np.uint8
  difference = np.abs(pixels.astype(np.float32) - _pil_expected(FORMATS[name], channels))
  assert difference.max() <= 1.0, f'{name}: off by up to {difference.max()} levels'


def test_grey_and_colour_outputs_are_consistent():
  grey = image_ops.decode_resized(tf.constant(FORMATS['png_gray8']), SIZE, 1).numpy()
  as_rgb = image_ops.decode_resized(tf.constant(FORMATS['png_gray8']), SIZE, 3).numpy()
  np.testing.assert_array_equal(as_rgb, np.repeat(grey, 3, axis=-1))
  rgb = (
    image_ops.decode_resized(tf.constant(FORMATS['png_rgb']), SIZE, 3).numpy().astype(np.float32)
  )
  luminance = image_ops.decode_resized(tf.constant(FORMATS['png_rgb']), SIZE, 1).numpy()[..., 0]
  assert np.abs(rgb @ np.array([0.299, 0.587, 0.114]) - luminance).max() <= 1.0


def test_decode_resized_rejects_other_channel_counts():
  with pytest.raises(ValueError, match='image_channels must be 1 or 3, got 2'):
    image_ops.decode_resized(tf.constant(FORMATS['png_gray8']), SIZE, 2)


def _write_raw_split(directory, split, images):
  path = os.path.join(directory, f'raw-{split}.gz')
  with tf.io.TFRecordWriter(path, options='GZIP') as writer:
    for label, encoded in images:
      writer.write(example_encoding.serialize(tfx_transform.raw_features(encoded, label)))
  return path


def _png(array: np.ndarray) -> bytes:
  return _encode(Image.fromarray(array), 'PNG')


def _read_transformed(output_dir, split, spec):
  files = glob.glob(
    os.path.join(output_dir, tfx_transform.TRANSFORMED_EXAMPLES_DIR, f'Split-{split}', '*.gz')
  )
  return [
    tf.io.parse_single_example(record, spec)
    for record in tf.data.TFRecordDataset(files, compression_type='GZIP')
  ]


# Dark train images of several formats; bright eval and test images that must not move the mean.
TRAIN = [
  (0, FORMATS['png_gray8']),
  (1, FORMATS['jpeg_rgb']),
  (2, FORMATS['png_gray16']),
  (0, _png((_texture((40, 40), 5) * 90).astype(np.uint8))),
  (1, FORMATS['png_palette']),
]
EVAL = [(2, _png(np.full((30, 50), 250, np.uint8))), (0, _png(np.full((64, 64, 3), 240, np.uint8)))]
TEST = [(1, _png(np.full((20, 20), 255, np.uint8)))]


@pytest.fixture(scope='module')
def transformed(tmp_path_factory):
  """Transform run analyzing 'train' only, 1 channel, 32 px, over train/eval/test."""
  directory = str(tmp_path_factory.mktemp('raw'))
  raw = {
    split: _write_raw_split(directory, split, images)
    for split, images in (('train', TRAIN), ('eval', EVAL), ('test', TEST))
  }
  output_dir = str(tmp_path_factory.mktemp('transform'))
  output = tfx_transform.run(raw, output_dir, {'image_size': SIZE, 'image_channels': 1})
  return output, output_dir


def _expected_pixels(images, channels):
  return [
    image_ops.decode_resized(tf.constant(encoded), SIZE, channels).numpy() for _, encoded in images
  ]


def test_transformed_feature_spec(transformed):
  output, _ = transformed
  assert output.transformed_feature_spec() == {
    features.PIXELS_XF: tf.io.FixedLenFeature([], tf.string),
    features.PIXEL_MEAN_XF: tf.io.FixedLenFeature([1], tf.float32),
    features.LABEL_XF: tf.io.FixedLenFeature([], tf.int64),
  }


@pytest.mark.parametrize('split,images', [('train', TRAIN), ('eval', EVAL), ('test', TEST)])
def test_pixels_and_labels_are_the_decoded_images(transformed, split, images):
  output, output_dir = transformed
  examples = _read_transformed(output_dir, split, output.transformed_feature_spec())
  got = sorted(
    (
      int(example[features.LABEL_XF]),
      image_ops.decode_pixels(example[features.PIXELS_XF], 1).numpy().tobytes(),
    )
    for example in examples
  )
  expected = sorted(
    (label, pixels.tobytes()) for (label, _), pixels in zip(images, _expected_pixels(images, 1))
  )
  assert got == expected


def _ingested_mean(images) -> float:
  """The mean of the ingestion's intensity_mean of each image."""
  means = [image_check.pixel_summary(encoded).intensity_mean for _, encoded in images]
  return float(np.mean(means))


def test_mean_is_the_train_split_ingested_mean_within_a_tenth_of_a_level_of_keras(transformed):
  output, output_dir = transformed
  train = np.stack(_expected_pixels(TRAIN, 1)).astype(np.float32)
  keras = keras_image.ImageDataGenerator(rescale=1 / 255.0, featurewise_center=True)
  keras.fit(train)
  ingested = _ingested_mean(TRAIN)
  # The documented difference: means of the stored pixels, before the resize.
  assert 0 < abs(ingested - keras.mean.item()) < 0.1 / 255
  everything = np.concatenate(
    [train, np.stack(_expected_pixels(EVAL + TEST, 1)).astype(np.float32)]
  )
  assert abs((everything / 255.0).mean() - ingested) > 0.1  # eval/test would move it
  for split in ('train', 'eval', 'test'):
    for example in _read_transformed(output_dir, split, output.transformed_feature_spec()):
      np.testing.assert_allclose(example[features.PIXEL_MEAN_XF].numpy(), [ingested], rtol=1e-6)


def test_three_channels_and_image_size_from_custom_config(tmp_path):
  raw = {'train': _write_raw_split(str(tmp_path), 'train', TRAIN)}
  output = tfx_transform.run(
    raw, str(tmp_path / 'transform'), {'image_size': 40, 'image_channels': 3}
  )
  examples = _read_transformed(
    str(tmp_path / 'transform'), 'train', output.transformed_feature_spec()
  )
  pixels = np.stack([image_ops.decode_pixels(e[features.PIXELS_XF], 3).numpy() for e in examples])
  assert pixels.shape == (len(TRAIN), 40, 40, 3)
  expected = np.stack(
    [image_ops.decode_resized(tf.constant(encoded), 40, 3).numpy() for _, encoded in TRAIN]
  )
  assert sorted(p.tobytes() for p in pixels) == sorted(e.tobytes() for e in expected)
  # Colour images count by their luminance, on every channel.
  np.testing.assert_allclose(
    examples[0][features.PIXEL_MEAN_XF].numpy(), [_ingested_mean(TRAIN)] * 3, rtol=1e-6
  )
