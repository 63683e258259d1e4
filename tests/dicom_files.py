"""Test helpers: DICOM files written by pydicom from the real CT and MR slices it ships, and the
display values pydicom's own pipeline gives them (the reference components.dicom is held to).

Every chest file carries identifying values in many elements (IDENTIFYING) so tests can check that
none of them is written anywhere (PATIENT_STRINGS).
"""

import copy
import io

import numpy as np
from PIL import Image
import pydicom
from pydicom import uid
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_modality_lut
from pydicom.pixels import apply_voi_lut

from benchmarks import dicom_data

PATIENT_NAME = 'Testpatient^Zelda'
PATIENT_ID = 'PID-7731-XQ'
PATIENT_AGE = '067Y'  # written only as its band, '60-69'
IDENTIFYING = {  # element -> a value found nowhere else
  'PatientBirthDate': '19580314',
  'PatientAddress': 'Quellweg 12, Nordwald',
  'OtherPatientIDs': 'OPID-4417-KV',
  'AccessionNumber': 'ACC-55210-ZQ',
  'InstitutionName': 'Nordwald Klinikum Quelle',
  'InstitutionAddress': 'Klinikstrasse 3, Nordwald',
  'ReferringPhysicianName': 'Referrer^Yvonne',
  'PerformingPhysicianName': 'Performer^Ulrich',
  'OperatorsName': 'Operator^Quentin',
  'StationName': 'XRAY-ROOM-QX9',
  'StudyID': 'STUDY-88412',
  'StudyDescription': 'Thorax follow-up Zelda',
  'StudyDate': '20200417',
}
PATIENT_STRINGS = (PATIENT_NAME, PATIENT_ID, 'Zelda', '7731-XQ', PATIENT_AGE, 'Nordwald') + tuple(
  IDENTIFYING.values()
)


def read(name: str) -> Dataset:
  """A file of pydicom's test data."""
  return pydicom.dcmread(get_testdata_file(name))


def chest(ds: Dataset, modality: str = 'DX', patient_id: str = PATIENT_ID) -> Dataset:
  """A copy of `ds` as a chest radiograph of the test patient (pixel data untouched), with the
  IDENTIFYING elements."""
  ds = copy.deepcopy(ds)
  ds.Modality = modality
  ds.BodyPartExamined = 'CHEST'
  ds.PatientName = PATIENT_NAME
  ds.PatientID = patient_id
  ds.PatientAge = PATIENT_AGE
  for keyword, value in IDENTIFYING.items():
    setattr(ds, keyword, value)
  return ds


def to_bytes(ds: Dataset) -> bytes:
  """A DICOM Part 10 file (preamble, b'DICM', file meta) in the dataset's transfer syntax."""
  out = io.BytesIO()
  ds.save_as(out, enforce_file_format=True)
  return out.getvalue()


def reference(ds: Dataset) -> np.ndarray:
  """float64 display values in [0, 65535] by pydicom's own pipeline: apply_modality_lut, then
  apply_voi_lut, scaled as components.dicom documents (over what the lowest and highest stored
  values give through the same two functions, or min-max without a VOI LUT or window),
  MONOCHROME1 inverted."""
  values = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)
  if 'WindowCenter' in ds or 'VOILUTSequence' in ds:
    bits = ds.BitsStored
    stored = (
      [0, 2**bits - 1] if ds.PixelRepresentation == 0 else [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1]
    )
    ends = apply_voi_lut(apply_modality_lut(np.array(stored), ds), ds)
  else:
    ends = values
  grey = (values - np.min(ends)) / (np.max(ends) - np.min(ends)) * 65535
  return 65535 - grey if ds.PhotometricInterpretation == 'MONOCHROME1' else grey


def png16(data: bytes) -> np.ndarray:
  """The pixels of a 16-bit greyscale PNG; fails on any other PNG."""
  assert data[:8] == b'\x89PNG\r\n\x1a\n' and data[24:26] == bytes([16, 0]), 'not 16-bit grey'
  return np.array(Image.open(io.BytesIO(data)))


def _unsigned12(ds: Dataset) -> Dataset:
  """`ds` (a signed 16-bit slice of values 0-4095) as unsigned 12 of 16 bits, uncompressed."""
  ds = copy.deepcopy(ds)
  pixels = ds.pixel_array.astype(np.uint16)
  assert pixels.max() < 4096
  ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
  ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
  ds.PixelData = pixels.tobytes()
  return ds


def _encapsulated(ds: Dataset, frame: bytes, syntax: uid.UID) -> Dataset:
  ds.file_meta.TransferSyntaxUID = syntax
  ds.PixelData = encapsulate([frame])
  ds['PixelData'].VR = 'OB'
  return ds


def jpeg_baseline() -> Dataset:
  """MR_small's pixels as 8-bit, JPEG baseline (Pillow's encoder), without its window."""
  ds = read('MR_small.dcm')
  pixels = ds.pixel_array.astype(np.float64)
  grey = np.round((pixels - pixels.min()) / np.ptp(pixels) * 255).astype(np.uint8)
  encoded = io.BytesIO()
  Image.fromarray(grey).save(encoded, format='JPEG', quality=90)
  del ds.WindowCenter, ds.WindowWidth
  ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
  return _encapsulated(ds, encoded.getvalue(), uid.JPEGBaseline8Bit)


def jpeg_lossless() -> Dataset:
  """MR_small's pixels as unsigned 12 bits with its window, JPEG lossless (process 14, SV1)."""
  ds = _unsigned12(read('MR_small.dcm'))
  frame = dicom_data.jpeg_lossless_frame(ds.pixel_array, precision=12)
  return _encapsulated(ds, frame, uid.JPEGLosslessSV1)


def rescaled_12_bit() -> Dataset:
  """CT_small's pixels as unsigned 12 of 16 bits with junk in the 4 unused high bits, rescale
  slope 0.5 and intercept -1024, and a window inside the stored range."""
  ds = _unsigned12(read('CT_small.dcm'))
  pixels = ds.pixel_array.copy()
  pixels[::3] |= 0xA000  # bits above BitsStored: not part of the value
  ds.PixelData = pixels.tobytes()
  ds.RescaleSlope, ds.RescaleIntercept = 0.5, -1024
  ds.WindowCenter, ds.WindowWidth = -600, 500
  return ds


def multi_frame() -> Dataset:
  """MR_small's slice twice, as two frames."""
  ds = chest(read('MR_small.dcm'))
  ds.NumberOfFrames = 2
  ds.PixelData = ds.PixelData * 2
  return ds


def structured_report() -> Dataset:
  """A Basic Text SR: no pixel data."""
  ds = Dataset()
  ds.file_meta = FileMetaDataset()
  ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
  ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = uid.BasicTextSRStorage
  ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = uid.generate_uid()
  ds.Modality = 'SR'
  ds.PatientName, ds.PatientID = PATIENT_NAME, PATIENT_ID
  return ds
