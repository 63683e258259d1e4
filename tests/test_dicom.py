"""components.dicom: DICOM to a 16-bit PNG, held to pydicom's own display pipeline, and the files
it refuses, with their reasons."""

import io

import numpy as np
import pydicom
from pydicom import uid
from pydicom.dataset import Dataset
import pytest
import tensorflow as tf

from components import dicom
from components import image_ops
from components.image_header import BadImage
from components.image_header import TOO_MANY_PIXELS
from components.image_header import TRUNCATED
import dicom_files

MAX_PIXELS = 10**8
COMPRESSED = {
  'JPEG baseline': (dicom_files.jpeg_baseline, uid.JPEGBaseline8Bit),
  'JPEG extended 12-bit': (lambda: dicom_files.read('JPGExtended.dcm'), uid.JPEGExtended12Bit),
  'JPEG lossless': (dicom_files.jpeg_lossless, uid.JPEGLosslessSV1),
  'JPEG-LS lossless': (
    lambda: dicom_files.read('MR_small_jpeg_ls_lossless.dcm'),
    uid.JPEGLSLossless,
  ),
  'JPEG 2000': (lambda: dicom_files.read('JPEG2000.dcm'), uid.JPEG2000),
  'JPEG 2000 lossless': (
    lambda: dicom_files.read('MR_small_jp2klossless.dcm'),
    uid.JPEG2000Lossless,
  ),
  'RLE': (lambda: dicom_files.read('MR_small_RLE.dcm'), uid.RLELossless),
}


def _converted(ds) -> np.ndarray:
  return dicom_files.png16(dicom.convert(dicom_files.to_bytes(ds), MAX_PIXELS).png)


def _refusal(ds_or_bytes) -> BadImage:
  data = ds_or_bytes if isinstance(ds_or_bytes, bytes) else dicom_files.to_bytes(ds_or_bytes)
  with pytest.raises(BadImage) as refused:
    dicom.convert(data, MAX_PIXELS)
  return refused.value


def test_monochrome1_and_monochrome2_copies_decode_identically():
  mono2 = dicom_files.chest(dicom_files.read('MR_small.dcm'))
  del mono2.WindowCenter, mono2.WindowWidth  # min-max: the inversion is exact
  mono1 = dicom_files.chest(mono2)
  mono1.PhotometricInterpretation = 'MONOCHROME1'
  mono1.PixelData = (-1 - mono2.pixel_array).astype(np.int16).tobytes()  # bright = low
  expected = _converted(mono2)
  assert np.ptp(expected) == 65535
  np.testing.assert_array_equal(_converted(mono1), expected)


def test_12_bit_rescale_and_window_match_pydicoms_pipeline():
  ds = dicom_files.chest(dicom_files.rescaled_12_bit())
  stored = np.frombuffer(ds.PixelData, np.uint16).reshape(ds.Rows, ds.Columns)
  assert (stored >= 4096).any()  # the unused high bits are set on some pixels
  got = _converted(ds)
  expected = dicom_files.reference(pydicom.dcmread(io.BytesIO(dicom_files.to_bytes(ds))))
  np.testing.assert_allclose(got, expected, atol=1)
  assert got.min() == 0 and got.max() == 65535  # the window clips both ends of this slice


def _lut(values) -> Dataset:
  """A LUT sequence item for stored values 0-4095: LUTDescriptor and 16-bit LUTData."""
  item = Dataset()
  item.LUTDescriptor = [4096, 0, 16]
  item.add_new('LUTData', 'OW', np.asarray(values, '<u2').tobytes())
  return item


def test_lut_sequences_match_pydicoms_pipeline():
  """A Modality LUT and a VOI LUT; then a Modality LUT that is not monotonic and no VOI LUT, so
  the min-max window depends on which values occur: pixel by pixel as pydicom's pipeline."""
  ds = dicom_files.chest(dicom_files.rescaled_12_bit())
  del ds.RescaleSlope, ds.RescaleIntercept, ds.WindowCenter, ds.WindowWidth
  stored = np.arange(4096)
  for modality, voi in (
    (np.round((stored / 4095) ** 2 * 4095), np.round(np.sqrt(stored / 4095) * 65535)),
    ((stored * 7919) % 4096, None),
  ):
    ds.ModalityLUTSequence = [_lut(modality)]
    ds.ModalityLUTSequence[0].ModalityLUTType = 'US'
    if voi is None:
      del ds.VOILUTSequence
    else:
      ds.VOILUTSequence = [_lut(voi)]
    got = _converted(ds)
    expected = dicom_files.reference(pydicom.dcmread(io.BytesIO(dicom_files.to_bytes(ds))))
    np.testing.assert_allclose(got, expected, atol=0.5)
  assert got.min() == 0 and got.max() == 65535  # min-max


@pytest.mark.parametrize('name', COMPRESSED)
def test_compressed_syntaxes_match_pydicoms_decode(name):
  make, syntax = COMPRESSED[name]
  data = dicom_files.to_bytes(dicom_files.chest(make()))
  ds = pydicom.dcmread(io.BytesIO(data))
  assert ds.file_meta.TransferSyntaxUID == syntax
  got = dicom_files.png16(dicom.convert(data, MAX_PIXELS).png)
  np.testing.assert_allclose(got, dicom_files.reference(ds), atol=1)


def test_the_stored_png_decodes_to_the_display_values_in_the_model_graph():
  """image_ops (Transform and serving) reads all 16 bits: x / 65535, not the high byte."""
  ds = dicom_files.chest(dicom_files.read('MR_small.dcm'))
  converted = dicom.convert(dicom_files.to_bytes(ds), MAX_PIXELS)
  side = converted.width
  assert converted.height == side  # same size: the resize is the identity
  pixels = image_ops.decode_resized(tf.constant(converted.png), side, 1).numpy()[..., 0]
  expected = dicom_files.reference(ds) / 65535 * 255
  np.testing.assert_allclose(pixels, expected, atol=0.5 + 1e-3)


@pytest.mark.parametrize(
  'make, reason, says',
  [
    (dicom_files.multi_frame, dicom.MULTI_FRAME, '2 frames'),
    (dicom_files.structured_report, dicom.NO_PIXEL_DATA, 'without pixel data'),
    (
      lambda: dicom_files.chest(dicom_files.read('CT_small.dcm'), modality='CT'),
      dicom.OUTSIDE_INTENDED_USE,
      'Modality is CT',
    ),
    (
      lambda: dicom_files.chest(dicom_files.read('SC_rgb_rle.dcm')),
      dicom.NOT_GREYSCALE,
      'PhotometricInterpretation RGB',
    ),
  ],
)
def test_what_is_not_a_single_greyscale_chest_radiograph_is_refused_with_its_reason(
  make, reason, says
):
  refused = _refusal(make())
  assert refused.reason == reason and says in refused.detail


def test_intended_use_modality_and_body_part():
  ds = dicom_files.chest(dicom_files.read('MR_small.dcm'))
  ds.BodyPartExamined = 'KNEE'
  assert 'BodyPartExamined is KNEE' in _refusal(ds).detail
  ds.BodyPartExamined = ''  # empty: not stated, accepted
  dicom.convert(dicom_files.to_bytes(ds), MAX_PIXELS)
  del ds.BodyPartExamined
  ds.Modality = 'CR'
  dicom.convert(dicom_files.to_bytes(ds), MAX_PIXELS)
  del ds.Modality  # mandatory in CR and DX images: refused
  assert _refusal(ds).detail.startswith('Modality is missing')


def test_truncated_corrupt_and_oversized_files():
  data = dicom_files.to_bytes(dicom_files.chest(dicom_files.read('CT_small.dcm')))
  assert _refusal(data[: len(data) // 2]).reason == TRUNCATED
  corrupt = _refusal(data[:132] + b'\xff' * 64)
  assert corrupt.reason == 'corrupt' and 'unreadable DICOM' in corrupt.detail
  with pytest.raises(BadImage) as refused:
    dicom.convert(data, max_pixels=128 * 128 - 1)
  assert refused.value.reason == TOO_MANY_PIXELS
