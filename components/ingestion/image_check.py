"""Validates one image file's bytes with a single full check, and prepares the bytes to store.

PNG and JPEG (grayscale or RGB) are stored as the original bytes; other formats that Pillow reads
(BMP, TIFF, GIF, WebP, PNM, CMYK JPEG, ...) are transcoded to lossless PNG, 16-bit kept 16-bit.
The pixel count is checked from the header, before anything is decoded (decompression bombs).
PNGs are validated by png_check (every check a decoder makes, without building pixels), other
formats by a full Pillow decode.
"""
import dataclasses
import io
import warnings

from PIL import Image, UnidentifiedImageError

from components.ingestion import png_check

STORED_AS_IS = {'PNG': None, 'JPEG': {'L', 'RGB'}}  # format -> modes kept verbatim (None: all)
BYTES_PER_PIXEL_BOUND = 8  # 16-bit RGBA, uncompressed: no valid image file is larger per pixel

# Quarantine reasons.
EMPTY_FILE = 'empty_file'
FILE_TOO_LARGE = 'file_too_large'
NOT_AN_IMAGE = 'not_an_image'
TOO_MANY_PIXELS = 'too_many_pixels'
TRUNCATED = 'truncated'
CORRUPT = 'corrupt'
UNSUPPORTED_MODE = 'unsupported_mode'

_CHANNELS = {'1': 1, 'L': 1, 'I': 1, 'I;16': 1, 'I;16B': 1, 'I;16L': 1, 'LA': 2, 'RGB': 3, 'RGBA': 4}
_PNG_MODES = set(_CHANNELS) | {'P'}  # modes a PNG holds losslessly


class BadImage(Exception):
  """A file that cannot be ingested: `reason` is a short code, `detail` says why."""

  def __init__(self, reason: str, detail: str):
    super().__init__(f'{reason}: {detail}')
    self.reason = reason
    self.detail = detail


@dataclasses.dataclass(frozen=True, slots=True)
class ImageInfo:
  format: str         # original format as Pillow names it ('PNG', 'JPEG', 'BMP', 'TIFF', ...)
  stored_format: str  # what the tf.Example holds: 'PNG' or 'JPEG'
  height: int
  width: int
  channels: int       # of the stored image, as tf.io.decode_image returns it

  @property
  def transcoded(self) -> bool:
    return self.format != self.stored_format


def max_file_bytes(max_image_pixels: int) -> int:
  """Files above this size cannot be a valid image within max_image_pixels: refused unread."""
  return max_image_pixels * BYTES_PER_PIXEL_BOUND + (1 << 20)


def _open(data: bytes, max_pixels: int) -> Image.Image:
  """Parses the header only and checks the pixel count."""
  try:
    with warnings.catch_warnings():
      warnings.simplefilter('ignore', Image.DecompressionBombWarning)
      image = Image.open(io.BytesIO(data))
  except Image.DecompressionBombError as e:
    raise BadImage(TOO_MANY_PIXELS, str(e)) from None
  except UnidentifiedImageError:
    raise BadImage(NOT_AN_IMAGE, 'Pillow cannot identify an image format in this file') from None
  except Exception as e:  # pylint: disable=broad-except  (any parser error means a broken header)
    raise BadImage(CORRUPT, f'unreadable header: {type(e).__name__}: {e}') from None
  width, height = image.size
  if width < 1 or height < 1:
    raise BadImage(CORRUPT, f'header declares {width}x{height} pixels')
  if width * height > max_pixels:
    raise BadImage(TOO_MANY_PIXELS, f'{width}x{height} = {width * height:,} pixels > max_image_pixels={max_pixels:,}')
  return image


def _decode(data: bytes, max_pixels: int) -> Image.Image:
  """Header check, then one full validation: png_check for PNG (no pixels needed), else a decode."""
  image = _open(data, max_pixels)
  try:
    if image.format == 'PNG' and not png_check.is_interlaced(data):
      png_check.validate(data)
    else:
      image.load()
  except Exception as e:  # pylint: disable=broad-except
    message = f'{type(e).__name__}: {e}'
    raise BadImage(TRUNCATED if 'truncated' in message.lower() else CORRUPT, message) from None
  return image


def _stored_mode(image: Image.Image) -> str:
  """The mode the image is stored in: the original one when PNG can hold it, else RGB(A) or 16-bit."""
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


def inspect(data: bytes, max_pixels: int) -> ImageInfo:
  """Validates `data` with one full check; raises BadImage with the reason."""
  if not data:
    raise BadImage(EMPTY_FILE, 'the file is empty (0 bytes)')
  image = _decode(data, max_pixels)
  kept_modes = STORED_AS_IS.get(image.format, set())
  if image.format in STORED_AS_IS and (kept_modes is None or image.mode in kept_modes):
    stored_format, mode = image.format, image.mode
  else:
    stored_format, mode = 'PNG', _stored_mode(image)
  return ImageInfo(format=image.format, stored_format=stored_format, height=image.height, width=image.width,
                   channels=_channels(image, mode))


def stored_bytes(data: bytes, info: ImageInfo, max_pixels: int) -> bytes:
  """The bytes the tf.Example holds: the original ones, or a lossless PNG of the first frame."""
  if not info.transcoded:
    return data
  image = _decode(data, max_pixels)
  mode = _stored_mode(image)
  if mode != image.mode:
    image = image.convert(mode)
  out = io.BytesIO()
  image.save(out, format='PNG')
  return out.getvalue()
