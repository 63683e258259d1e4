"""Image validation (header limits, the PNG check against real decoders) and the TF-free
Example encoding."""

import io
import random
import struct
import zlib

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from components.ingestion import example_encoding
from components.ingestion import image_check
from components.ingestion import png_check


def _png(mode: str, seed: int = 0, size=(50, 40)) -> bytes:
  pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(pixels).convert(mode).save(buffer, format='PNG')
  return buffer.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
  return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))


def _rebuild(data: bytes, idat_body: bytes = None, drop=()) -> bytes:
  """`data` with its IDAT replaced by one chunk of `idat_body` and chunks of `drop` removed, CRCs
  valid."""
  out, pos = [png_check.SIGNATURE], 8
  while pos < len(data):
    length, kind = struct.unpack_from('>I4s', data, pos)
    body = data[pos + 8 : pos + 8 + length]
    if kind == b'IDAT' and idat_body is not None:
      body, idat_body = idat_body, None
    elif kind == b'IDAT' or kind in drop:
      pos += 12 + length
      continue
    out.append(_chunk(kind, body))
    pos += 12 + length
  return b''.join(out)


def _decoders_accept(data: bytes) -> bool:
  try:
    tf.io.decode_png(data).numpy()
    with Image.open(io.BytesIO(data)) as image:
      image.load()
    return True
  except Exception:
    return False


def _png_check_accepts(data: bytes) -> bool:
  try:
    png_check.validate(data)
    return True
  except ValueError:
    return False


@pytest.mark.parametrize('mode', ['1', 'L', 'LA', 'P', 'RGB', 'RGBA', 'I;16'])
def test_png_check_accepts_valid_pngs_of_every_kind(mode):
  if mode == 'I;16':
    buffer = io.BytesIO()
    Image.fromarray((np.arange(2000).reshape(40, 50) * 30).astype(np.uint16)).save(
      buffer, format='PNG'
    )
    data = buffer.getvalue()
  else:
    data = _png(mode)
  png_check.validate(data)
  assert _decoders_accept(data)


def test_png_check_is_at_least_as_strict_as_tensorflow_and_pillow():
  """Random damage to the image data (CRCs recomputed, so only the content checks can catch it)."""
  rng = random.Random(0)
  rejected_by_decoders = 0
  for trial in range(240):
    original = _png(('L', 'RGB', 'RGBA', 'P', 'LA')[trial % 5], seed=trial)
    start = original.index(b'IDAT') + 4
    length = struct.unpack_from('>I', original, start - 8)[0]
    body = bytearray(original[start : start + length])
    for _ in range(rng.randrange(1, 4)):
      body[rng.randrange(len(body))] = rng.randrange(256)
    damaged = _rebuild(original, bytes(body))
    if not _decoders_accept(damaged):
      rejected_by_decoders += 1
      assert not _png_check_accepts(damaged), f'trial {trial}: decoders reject, png_check accepts'
  assert rejected_by_decoders > 150


def test_png_check_reasons():
  data = _png('L')
  length = struct.unpack_from('>I', data, data.index(b'IDAT') - 4)[0]
  start = data.index(b'IDAT') + 4
  rows = bytearray(zlib.decompress(data[start : start + length]))
  rows[51 * 7] = 9  # row 7's filter type
  cases = {
    'invalid row filter type 9': _rebuild(data, zlib.compress(bytes(rows))),
    'not enough image data': _rebuild(data, zlib.compress(bytes(rows[:-51]))),
    'too much image data': _rebuild(data, zlib.compress(bytes(rows) + b'\0' * 51)),
    'truncated: the file ends': _rebuild(data, drop=(b'IEND',)),
    'truncated: chunk': data[: len(data) - 30],
    "CRC mismatch in chunk b'IDAT'": data[: start + 5]
    + bytes([data[start + 5] ^ 1])
    + data[start + 6 :],
    'palette image without a PLTE chunk': _rebuild(_png('P'), drop=(b'PLTE',)),
  }
  for message, damaged in cases.items():
    with pytest.raises(ValueError, match=message.replace('(', r'\(')):
      png_check.validate(damaged)
    assert not _decoders_accept(damaged) or message.startswith(
      'too much'
    )  # libpng only warns on extra data


def test_image_check_refuses_too_many_pixels_from_the_header():
  data = _png('L', size=(64, 64))
  with pytest.raises(
    image_check.BadImage, match='64x64 = 4,096 pixels > max_image_pixels=1,000'
  ) as error:
    image_check.inspect(data, max_pixels=1000)
  assert error.value.reason == 'too_many_pixels'
  header = struct.pack(
    '>IIBBBBB', 100_000, 100_000, 8, 0, 0, 0, 0
  )  # 10 billion pixels, 60 bytes of file
  bomb = (
    png_check.SIGNATURE
    + _chunk(b'IHDR', header)
    + _chunk(b'IDAT', zlib.compress(b'\0'))
    + _chunk(b'IEND', b'')
  )
  with pytest.raises(image_check.BadImage) as error:
    image_check.inspect(bomb, max_pixels=10**12)
  assert error.value.reason == 'too_many_pixels'
  info = image_check.inspect(data, max_pixels=4096)
  assert (info.format, info.height, info.width, info.channels, info.transcoded) == (
    'PNG',
    64,
    64,
    1,
    False,
  )


def test_example_encoding_matches_tensorflow():
  values = {
    'image': bytes(range(256)) * 3000,
    'label': 2,
    'zero': 0,
    'negative': -5,
    'big': 2**40 + 7,
    'name': 'VIRAL PNEUMONIA'.encode(),
    'empty': b'',
    'mean': 0.1234567,
    'std': 0.0,
  }

  def feature(v):
    if isinstance(v, bytes):
      return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))
    if isinstance(v, float):
      return tf.train.Feature(float_list=tf.train.FloatList(value=[v]))
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))

  expected = tf.train.Example(
    features=tf.train.Features(feature={key: feature(v) for key, v in values.items()})
  )
  assert tf.train.Example.FromString(example_encoding.serialize(values)) == expected
  assert example_encoding.serialize(values) == expected.SerializeToString(deterministic=True)
  parsed = tf.io.parse_single_example(
    example_encoding.serialize(values),
    {
      'label': tf.io.FixedLenFeature([1], tf.int64),
      'negative': tf.io.FixedLenFeature([1], tf.int64),
      'image': tf.io.FixedLenFeature([1], tf.string),
      'mean': tf.io.FixedLenFeature([1], tf.float32),
    },
  )
  assert parsed['mean'].numpy()[0] == pytest.approx(0.1234567)
  assert parsed['label'].numpy().tolist() == [2] and parsed['negative'].numpy().tolist() == [-5]
  assert parsed['image'].numpy()[0] == values['image']
