"""DICOM to a 16-bit greyscale PNG: the one conversion of ingestion, TFDS and `cxr predict`.

The stored values (BitsStored of them) go through pydicom's modality LUT (rescale slope and
intercept, or a Modality LUT) and then its VOI LUT or window (the first one); the output is
scaled to 0-65535 over the range the stored values can reach through the same two LUTs, so a
window spans the full 16 bits. A file with neither VOI LUT nor window gets a min-max window over
its own values. MONOCHROME1 (bright = low) is inverted last. The PNG is lossless.

Intended use: only single-frame greyscale chest radiographs are converted. Modality must be CR
or DX (it is mandatory in their IODs: a file without it is refused too), and BodyPartExamined,
when present and not empty, must be CHEST. Anything else raises image_header.BadImage with a
reason: ingestion quarantines the file with it, `cxr predict` prints it as the file's error.

Only the elements named here and the ones pydicom's LUT functions read are accessed. None of them
is written anywhere, except the SUBJECT_ELEMENTS that `convert` also returns (from the same parse)
for ingestion, which keeps the patient id only as a salted hash and the age only as a band
(components/ingestion/subjects.py): no name, date, study or institution element reaches an
artifact or a log.
Compressed pixel data (JPEG, JPEG-LS, JPEG 2000) is decoded by the pylibjpeg plugins, RLE by
pydicom itself.
"""

import dataclasses
import io
from typing import Dict
import warnings

import numpy as np
from PIL import Image
import pydicom
from pydicom.pixels import apply_modality_lut
from pydicom.pixels import apply_voi_lut

from components import image_header
from components.image_header import BadImage
from components.image_header import CORRUPT
from components.image_header import TRUNCATED

FORMAT = 'DICOM'  # the source format ingestion records (manifest `format`)
MAGIC_OFFSET = 128  # a DICOM file: a 128-byte preamble, then b'DICM'
MAGIC = b'DICM'
MODALITIES = ('CR', 'DX')  # computed and digital radiography
BODY_PART = 'CHEST'
GREYSCALE = ('MONOCHROME1', 'MONOCHROME2')
OUTPUT_MAX = 65535
# The patient and acquisition elements ingestion keeps (hashed or banded): an allow-list.
SUBJECT_ELEMENTS = ('PatientID', 'ViewPosition', 'PatientSex', 'PatientAge', 'Manufacturer')

# Quarantine reasons, besides image_header's.
NO_PIXEL_DATA = 'dicom_without_image'
MULTI_FRAME = 'dicom_multi_frame'
NOT_GREYSCALE = 'dicom_not_greyscale'
OUTSIDE_INTENDED_USE = 'outside_intended_use'


@dataclasses.dataclass(frozen=True, slots=True)
class Converted:
  png: bytes  # 16-bit greyscale PNG
  grey: np.ndarray  # its pixels (uint16, rows x columns): summaries need not decode the PNG
  subject: Dict[str, str]  # the SUBJECT_ELEMENTS ('' when absent), and no other element

  @property
  def height(self) -> int:
    return self.grey.shape[0]

  @property
  def width(self) -> int:
    return self.grey.shape[1]


def is_dicom(data: bytes) -> bool:
  """A DICOM Part 10 file: b'DICM' after the 128-byte preamble."""
  return data[MAGIC_OFFSET : MAGIC_OFFSET + len(MAGIC)] == MAGIC


def _read(data: bytes) -> pydicom.Dataset:
  try:
    ds = pydicom.dcmread(io.BytesIO(data))
  except Exception as e:  # (InvalidDicomError, EOFError, struct and value errors)
    raise BadImage(CORRUPT, f'unreadable DICOM: {type(e).__name__}: {_first_line(e)}') from None
  if not len(ds):  # pydicom stops silently at what it cannot parse
    raise BadImage(CORRUPT, 'unreadable DICOM: no data element could be read after the header')
  return ds


def _first_line(error: Exception) -> str:
  """The error's message on one line: its first line, with the next when the first ends with ':'
  (pydicom: 'Unable to decode as exceptions were raised by all available plugins:')."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [
    type(error).__name__
  ]
  return ' '.join(lines[:2] if lines[0].endswith(':') else lines[:1])[:300]


def _check_intended_use(ds: pydicom.Dataset) -> None:
  modality = str(ds.get('Modality', '') or '').strip().upper()
  if modality not in MODALITIES:
    raise BadImage(
      OUTSIDE_INTENDED_USE,
      f'Modality is {modality or "missing"}: only chest radiographs '
      f'({" or ".join(MODALITIES)}) are classified',
    )
  body_part = str(ds.get('BodyPartExamined', '') or '').strip().upper()
  if body_part and body_part != BODY_PART:
    raise BadImage(
      OUTSIDE_INTENDED_USE,
      f'BodyPartExamined is {body_part}: only {BODY_PART} radiographs are classified',
    )


def _check_image(ds: pydicom.Dataset, max_pixels: int) -> None:
  """Pixel data present, one greyscale frame within max_pixels; raises BadImage."""
  if 'PixelData' not in ds:
    if 'Rows' in ds:
      raise BadImage(TRUNCATED, 'DICOM image without its pixel data: the file is truncated')
    raise BadImage(
      NO_PIXEL_DATA, 'DICOM without pixel data: not an image (e.g. a structured report)'
    )
  frames = int(ds.get('NumberOfFrames', 1) or 1)
  if frames > 1:
    raise BadImage(MULTI_FRAME, f'{frames} frames: only single-frame radiographs are classified')
  photometric = str(ds.get('PhotometricInterpretation', ''))
  if ds.get('SamplesPerPixel', 1) != 1 or photometric not in GREYSCALE:
    raise BadImage(
      NOT_GREYSCALE,
      f'PhotometricInterpretation {photometric or "missing"}: only {" or ".join(GREYSCALE)} '
      'radiographs are classified',
    )
  image_header.check_size(
    int(ds.get('Columns', 0)), int(ds.get('Rows', 0)), max_pixels, 'DICOM header'
  )


def _stored_range(ds: pydicom.Dataset) -> np.ndarray:
  """The smallest and largest value BitsStored bits hold (signed when PixelRepresentation 1)."""
  bits = int(ds.BitsStored)
  if ds.PixelRepresentation == 1:
    return np.array([-(2 ** (bits - 1)), 2 ** (bits - 1) - 1])
  return np.array([0, 2**bits - 1])


def _pixels(ds: pydicom.Dataset) -> np.ndarray:
  """The stored values decoded by pydicom (a plugin for compressed syntaxes); raises BadImage."""
  try:
    return ds.pixel_array
  except Exception as e:  # (decoder and length errors, a syntax without a decoder)
    message = _first_line(e)
    reason = TRUNCATED if 'less than expected' in message or 'truncated' in message else CORRUPT
    syntax = ds.file_meta.get('TransferSyntaxUID')
    name = getattr(syntax, 'name', syntax) or 'no transfer syntax'
    raise BadImage(reason, f'cannot decode DICOM pixel data ({name}): {message}') from None


def _display_values(ds: pydicom.Dataset, stored: np.ndarray) -> np.ndarray:
  """Stored values -> uint16 display values: modality LUT, VOI LUT or window (else min-max),
  scaled to 0-65535, MONOCHROME1 inverted.

  Integer data of at most 16 bits goes through pydicom's LUTs once per value BitsStored can hold
  (4,096 for 12 bits) and then one table lookup per pixel: the LUTs are functions of the stored
  value alone, so the result is the same as on the pixel array, where the float arithmetic on
  every pixel took a fifth of a 1024 px conversion.
  """
  low_stored, high_stored = _stored_range(ds)
  if stored.dtype.kind not in 'iu' or high_stored - low_stored >= 2**16:
    return _scaled(ds, stored, stored)
  index = stored if low_stored == 0 else stored.astype(np.int32) - low_stored
  table = _scaled(ds, np.arange(low_stored, high_stored + 1), index)
  return np.take(table, index, mode='clip')


def _scaled(ds: pydicom.Dataset, stored: np.ndarray, image: np.ndarray) -> np.ndarray:
  """_display_values of `stored`; a min-max window spans the values of `image`, the pixels (as
  indices into `stored` when it is the table of every stored value)."""
  modality = apply_modality_lut(stored, ds)
  values = apply_voi_lut(modality, ds)
  if values is not modality:
    ends = apply_voi_lut(apply_modality_lut(_stored_range(ds), ds), ds)
  elif image is stored:
    ends = values
  else:  # neither a usable VOI LUT nor a window (pydicom returns its input): the pixels' range
    present = np.bincount(np.clip(image, 0, len(stored) - 1).ravel(), minlength=len(stored))
    ends = values[present > 0]
  low, high = float(np.min(ends)), float(np.max(ends))
  scale = OUTPUT_MAX / (high - low) if high > low else 0.0
  inverted = ds.PhotometricInterpretation == 'MONOCHROME1'
  grey = np.round(((high - values) if inverted else (values - low)) * scale)
  return np.clip(grey, 0, OUTPUT_MAX).astype(np.uint16)


def convert(data: bytes, max_pixels: int) -> Converted:
  """A DICOM file's bytes -> its 16-bit PNG and SUBJECT_ELEMENTS, from one parse; raises
  BadImage with the reason it is refused."""
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')  # pydicom's warnings about other elements' values
    ds = _read(data)
    _check_image(ds, max_pixels)
    _check_intended_use(ds)
    grey = _display_values(ds, _pixels(ds))
    subject = {keyword: str(ds.get(keyword, '') or '') for keyword in SUBJECT_ELEMENTS}
  out = io.BytesIO()
  Image.fromarray(grey).save(out, format='PNG')
  return Converted(out.getvalue(), grey, subject)
