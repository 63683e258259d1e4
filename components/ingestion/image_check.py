"""Validates one image file's bytes with a single full check, and prepares the bytes to store.

PNG and JPEG (grayscale or RGB) are stored as the original bytes; other formats that Pillow reads
(BMP, TIFF, GIF, WebP, PNM, CMYK JPEG, ...) are transcoded to lossless PNG, 16-bit kept 16-bit.
DICOM is converted to a 16-bit greyscale PNG by components.dicom (which also refuses what is not a
chest radiograph); the conversion is its check, so `check` returns the conversion (the PNG, its
pixels and the subject elements), for ingestion to store without converting the file a second time.
The pixel count is checked from the header, before anything is decoded (image_header).
PNGs are validated by png_check (every check a decoder makes, without building pixels), other
formats by a full Pillow decode.
`pixel_summary` describes the stored pixels (bit depth, intensity) for the drift check;
`grey16_summary` the same from a DICOM conversion's pixels, without decoding its PNG again.
"""

import dataclasses
import io
from typing import Optional, Tuple

import numpy as np
from PIL import Image

from components import dicom
from components.image_header import BadImage
from components.image_header import CORRUPT
from components.image_header import open_header
from components.image_header import TRUNCATED
from components.ingestion import png_check

STORED_AS_IS = {'PNG': None, 'JPEG': {'L', 'RGB'}}  # format -> modes kept verbatim (None: all)

# Quarantine reasons, besides image_header's.
EMPTY_FILE = 'empty_file'
UNSUPPORTED_MODE = 'unsupported_mode'

_CHANNELS = {
  '1': 1,
  'L': 1,
  'I': 1,
  'I;16': 1,
  'I;16B': 1,
  'I;16L': 1,
  'LA': 2,
  'RGB': 3,
  'RGBA': 4,
}
_PNG_MODES = set(_CHANNELS) | {'P'}  # modes a PNG holds losslessly


@dataclasses.dataclass(frozen=True, slots=True)
class ImageInfo:
  format: str  # original format as Pillow names it ('PNG', 'JPEG', 'BMP', 'TIFF', ...) or 'DICOM'
  stored_format: str  # what the tf.Example holds: 'PNG' or 'JPEG'
  height: int
  width: int
  channels: int  # of the stored image, as tf.io.decode_image returns it

  @property
  def transcoded(self) -> bool:
    return self.format != self.stored_format


def _decode(data: bytes, max_pixels: int) -> Image.Image:
  """Header check, then one full validation: png_check for PNG (no pixels needed), else a decode."""
  image = open_header(data, max_pixels)
  try:
    if image.format == 'PNG' and not png_check.is_interlaced(data):
      png_check.validate(data)
    else:
      image.load()
  except Exception as e:
    message = f'{type(e).__name__}: {e}'
    raise BadImage(TRUNCATED if 'truncated' in message.lower() else CORRUPT, message) from None
  return image


def _stored_mode(image: Image.Image) -> str:
  """The mode the image is stored in: the original one when PNG can hold it, else RGB(A) or
  16-bit."""
  if image.mode in _PNG_MODES:
    return image.mode
  if image.mode in ('CMYK', 'YCbCr', 'LAB', 'HSV'):
    return 'RGB'
  if image.mode in ('RGBa', 'RGBX', 'PA'):
    return 'RGBA'
  if image.mode == 'La':
    return 'LA'
  raise BadImage(UNSUPPORTED_MODE, f'pixel mode {image.mode!r} has no lossless PNG equivalent')


def _channels(image: Image.Image, mode: str) -> int:
  if mode == 'P':
    return 4 if 'transparency' in image.info else 3
  return _CHANNELS[mode]


def check(data: bytes, max_pixels: int) -> Tuple[ImageInfo, Optional[dicom.Converted]]:
  """Validates `data` with one full check; returns its ImageInfo and, when the check was a DICOM
  conversion, that conversion (its PNG is the bytes to store), else None. Raises BadImage with the
  reason."""
  if not data:
    raise BadImage(EMPTY_FILE, 'the file is empty (0 bytes)')
  if dicom.is_dicom(data):
    converted = dicom.convert(data, max_pixels)
    info = ImageInfo(dicom.FORMAT, 'PNG', converted.height, converted.width, channels=1)
    return info, converted
  image = _decode(data, max_pixels)
  kept_modes = STORED_AS_IS.get(image.format, set())
  if image.format in STORED_AS_IS and (kept_modes is None or image.mode in kept_modes):
    stored_format, mode = image.format, image.mode
  else:
    stored_format, mode = 'PNG', _stored_mode(image)
  info = ImageInfo(
    format=image.format,
    stored_format=stored_format,
    height=image.height,
    width=image.width,
    channels=_channels(image, mode),
  )
  return info, None


def inspect(data: bytes, max_pixels: int) -> ImageInfo:
  """Validates `data` with one full check; raises BadImage with the reason."""
  return check(data, max_pixels)[0]


def made_by_check(info: ImageInfo) -> bool:
  """Whether `check` returned the bytes to store of an image with this info (for DICOM)."""
  return info.format == dicom.FORMAT


def stored_bytes(data: bytes, info: ImageInfo, max_pixels: int) -> bytes:
  """The bytes the tf.Example holds: the original ones, or a lossless PNG of the first frame (of
  the display values for DICOM)."""
  if not info.transcoded:
    return data
  if info.format == dicom.FORMAT:
    return dicom.convert(data, max_pixels).png
  image = _decode(data, max_pixels)
  mode = _stored_mode(image)
  if mode != image.mode:
    image = image.convert(mode)
  out = io.BytesIO()
  image.save(out, format='PNG')
  return out.getvalue()


@dataclasses.dataclass(frozen=True, slots=True)
class PixelSummary:
  """The stored pixels in three numbers, features the drift check compares between spans."""

  bit_depth: int  # 16 for 16-bit greyscale, 1 for bilevel, else 8
  intensity_mean: float  # of the pixels scaled to [0, 1] (greyscale; colour as luminance)
  intensity_std: float


def _summary(pixels: np.ndarray, bit_depth: int, scale: float) -> PixelSummary:
  return PixelSummary(
    bit_depth,
    float(pixels.mean(dtype=np.float64) / scale),
    float(pixels.std(dtype=np.float64) / scale),
  )


def pixel_summary(stored: bytes) -> PixelSummary:
  """Decodes the stored bytes (already validated) once and summarizes their pixels."""
  image = Image.open(io.BytesIO(stored))
  if image.mode.startswith('I'):  # 16-bit greyscale ('I;16', or 'I' from older Pillow)
    return grey16_summary(np.asarray(image))
  if image.mode == '1':
    return _summary(np.asarray(image), 1, 1.0)
  if image.mode != 'L':
    image = image.convert('L')
  return _summary(np.asarray(image), 8, 255.0)


def grey16_summary(pixels: np.ndarray) -> PixelSummary:
  """The summary of 16-bit greyscale pixels (a DICOM conversion's), as pixel_summary gives for
  their PNG."""
  return _summary(pixels, 16, 65535.0)
