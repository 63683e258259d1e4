"""The decompression-bomb guard of ingestion and `cxr predict`: checks made before any decoding.

A file larger than any image within the pixel limit could be is refused unread (max_file_bytes),
and an image whose header declares more pixels than the limit is refused from the header alone
(open_header), so neither reaches a decoder.
"""

import io
import warnings

from PIL import Image
from PIL import UnidentifiedImageError

BYTES_PER_PIXEL_BOUND = 8  # 16-bit RGBA, uncompressed: no valid image file is larger per pixel

# Reasons (ingestion's quarantine reasons).
FILE_TOO_LARGE = 'file_too_large'
NOT_AN_IMAGE = 'not_an_image'
TOO_MANY_PIXELS = 'too_many_pixels'
CORRUPT = 'corrupt'
TRUNCATED = 'truncated'


class BadImage(Exception):
  """A file that cannot be used as an image: `reason` is a short code, `detail` says why."""

  def __init__(self, reason: str, detail: str):
    super().__init__(f'{reason}: {detail}')
    self.reason = reason
    self.detail = detail


def max_file_bytes(max_image_pixels: int) -> int:
  """Files above this size cannot be a valid image within max_image_pixels: refused unread."""
  return max_image_pixels * BYTES_PER_PIXEL_BOUND + (1 << 20)


def check_file_size(size: int, max_image_pixels: int) -> None:
  """Raises BadImage(FILE_TOO_LARGE) for a file of `size` bytes above max_file_bytes."""
  if size > max_file_bytes(max_image_pixels):
    raise BadImage(
      FILE_TOO_LARGE,
      f'{size:,} bytes is more than any image of max_image_pixels={max_image_pixels:,} can take',
    )


def open_header(data: bytes, max_pixels: int) -> Image.Image:
  """Parses the header only and checks the pixel count; raises BadImage."""
  try:
    with warnings.catch_warnings():
      warnings.simplefilter('ignore', Image.DecompressionBombWarning)
      image = Image.open(io.BytesIO(data))
  except Image.DecompressionBombError as e:
    raise BadImage(TOO_MANY_PIXELS, str(e)) from None
  except UnidentifiedImageError:
    raise BadImage(NOT_AN_IMAGE, 'Pillow cannot identify an image format in this file') from None
  except Exception as e:  # (any parser error means a broken header)
    raise BadImage(CORRUPT, f'unreadable header: {type(e).__name__}: {e}') from None
  check_size(*image.size, max_pixels)
  return image


def check_size(width: int, height: int, max_pixels: int, declared_by: str = 'header') -> None:
  """Raises BadImage unless the size `declared_by` a header is positive and within max_pixels."""
  if width < 1 or height < 1:
    raise BadImage(CORRUPT, f'{declared_by} declares {width}x{height} pixels')
  if width * height > max_pixels:
    raise BadImage(
      TOO_MANY_PIXELS,
      f'{width}x{height} = {width * height:,} pixels > max_image_pixels={max_pixels:,}',
    )
