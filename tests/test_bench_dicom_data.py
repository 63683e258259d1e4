"""The benchmark's DICOM files: pydicom decodes both transfer syntaxes, the JPEG-lossless frames
of benchmarks/dicom_data's own encoder included, to the pixels written."""

import io

import numpy as np
import pydicom

from benchmarks import dicom_data


def test_both_syntaxes_decode_to_the_pixels_written():
  image = dicom_data.pixels(2, 192, [0, 1])
  assert image.max() < 2**dicom_data.BITS and len(np.unique(image)) > 1000
  for syntax, transfer_syntax in dicom_data.SYNTAXES.items():
    out = io.BytesIO()
    dicom_data.dataset(image, syntax, 'P0').save_as(out, enforce_file_format=True)
    ds = pydicom.dcmread(io.BytesIO(out.getvalue()))
    assert ds.file_meta.TransferSyntaxUID == transfer_syntax
    np.testing.assert_array_equal(ds.pixel_array, image, err_msg=syntax)


def test_jpeg_lossless_frame_of_flat_and_extreme_images():
  for image in (np.zeros((8, 9), np.uint16), np.tile([0, 4095], (8, 8)).astype(np.uint16)):
    frame = dicom_data.jpeg_lossless_frame(image)
    ds = dicom_data.dataset(image, dicom_data.JPEG_LOSSLESS, 'P0')
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    assert frame[:2] == b'\xff\xd8'
    np.testing.assert_array_equal(pydicom.dcmread(io.BytesIO(out.getvalue())).pixel_array, image)
