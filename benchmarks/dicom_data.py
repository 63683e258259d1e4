"""Chest-X-ray-like DICOM files for the ingestion benchmark, written with pydicom.

Each image is components.demo_data.render scaled to 12 bits (BitsStored 12 of 16, MONOCHROME2,
a window as DX files carry) with per-file noise in the low bits, so every file has its own pixels
(and sha256). Two copies of the same pixels: uncompressed (Explicit VR Little Endian) and JPEG
lossless (process 14, selection value 1). pydicom 3 has no encoder for JPEG lossless and
python-gdcm is not installed, so `jpeg_lossless_frame` encodes it (numpy, a Huffman table fitted
to each image's differences); pydicom (pylibjpeg-libjpeg) decodes it to the same pixels
(tests/test_bench_dicom_data.py).
"""

import heapq
import multiprocessing
import os
import struct

import numpy as np
from pydicom import uid
from pydicom.dataset import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate

from components import demo_data
from components import labels

BITS = 12
SIZE = 1024
UNCOMPRESSED = 'uncompressed'
JPEG_LOSSLESS = 'jpeg_lossless'
SYNTAXES = {UNCOMPRESSED: uid.ExplicitVRLittleEndian, JPEG_LOSSLESS: uid.JPEGLosslessSV1}


def pixels(label: int, size: int, seed) -> np.ndarray:
  """A rendered chest X-ray as 12-bit values (uint16) with noise of a few grey levels."""
  rng = np.random.default_rng(seed)
  grey = demo_data.render(label, size, size, rng).astype(np.float32) * ((2**BITS - 1) / 255)
  grey += rng.normal(0, 6, grey.shape).astype(np.float32)
  return np.clip(np.round(grey), 0, 2**BITS - 1).astype(np.uint16)


def _code_lengths(counts: np.ndarray) -> np.ndarray:
  """Huffman code lengths of the symbols with a count (0 for the others), with a reserved
  symbol of count 1 so that no code is all ones (JPEG K.2); None when one exceeds 16 bits."""
  heap = [(int(c), [s]) for s, c in enumerate(counts) if c] + [(1, [-1])]
  heapq.heapify(heap)
  lengths = np.zeros(len(counts) + 1, np.int64)
  while len(heap) > 1:
    (c1, s1), (c2, s2) = heapq.heappop(heap), heapq.heappop(heap)
    lengths[s1 + s2] += 1
    heapq.heappush(heap, (c1 + c2, s1 + s2))
  lengths = lengths[:-1]  # drop the reserved symbol (index -1)
  return None if lengths.max() > 16 else lengths


def jpeg_lossless_frame(image: np.ndarray, precision: int = BITS) -> bytes:
  """A lossless JPEG (ITU T.81 process 14, selection value 1: the left neighbour predicts, the one
  above at the start of a row), one component, one scan."""
  x = image.astype(np.int64)
  prediction = np.empty_like(x)
  prediction[:, 1:] = x[:, :-1]
  prediction[1:, 0] = x[:-1, 0]
  prediction[0, 0] = 1 << (precision - 1)
  diff = (x - prediction).ravel()
  size = np.frexp(np.abs(diff).astype(np.float64))[1].astype(np.int64)  # bit length of |diff|
  extra = np.where(diff >= 0, diff, diff + (1 << size) - 1)
  lengths = _code_lengths(np.bincount(size, minlength=17))
  if lengths is None:  # a fixed 5-bit code per category
    lengths = np.where(np.arange(17) <= size.max(), 5, 0)
  symbols = [s for n in range(1, 17) for s in np.flatnonzero(lengths == n)]
  codes, code, previous = np.zeros(17, np.int64), 0, lengths[symbols[0]]
  for s in symbols:  # canonical codes: by length, then symbol
    code <<= lengths[s] - previous
    codes[s], previous, code = code, lengths[s], code + 1
  value = (codes[size] << size) | extra
  bits = lengths[size] + size
  # Each code (at most 16 + 16 bits) lands in the 5 bytes from the one its first bit is in; the
  # codes do not overlap, so summing their byte contributions assembles the stream.
  ends = np.cumsum(bits)
  starts = ends - bits
  shifted = value << (40 - (starts % 8) - bits)  # the code's bits in a 40-bit window
  n_bytes = -(-int(ends[-1]) // 8)
  stream = np.zeros(n_bytes + 5, np.float64)
  for k in range(5):
    lane = (shifted >> (32 - 8 * k)) & 0xFF
    stream += np.bincount(starts // 8 + k, weights=lane, minlength=n_bytes + 5)
  stream = stream[:n_bytes].astype(np.uint8)
  pad = -int(ends[-1]) % 8
  stream[-1] |= (1 << pad) - 1  # ones up to the byte
  scan = stream.tobytes().replace(b'\xff', b'\xff\x00')

  def segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack('>H', len(body) + 2) + body

  height, width = image.shape
  frame = struct.pack('>BHHB', precision, height, width, 1) + bytes([1, 0x11, 0])
  counts = [int(np.sum(lengths == n)) for n in range(1, 17)]
  huffman = bytes([0x00] + counts + [int(s) for s in symbols])
  start_of_scan = bytes([1, 1, 0x00, 1, 0, 0])
  return (
    b'\xff\xd8'
    + segment(0xC3, frame)
    + segment(0xC4, huffman)
    + segment(0xDA, start_of_scan)
    + scan
    + b'\xff\xd9'
  )


def dataset(image: np.ndarray, syntax: str, patient: str) -> Dataset:
  """A DX chest radiograph of `image` (12-bit values) in the transfer syntax named `syntax`."""
  ds = Dataset()
  ds.file_meta = FileMetaDataset()
  ds.file_meta.TransferSyntaxUID = SYNTAXES[syntax]
  ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = uid.DigitalXRayImageStorageForPresentation
  ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = uid.generate_uid()
  ds.Modality, ds.BodyPartExamined, ds.ViewPosition = 'DX', 'CHEST', 'PA'
  ds.PatientID = patient
  ds.Rows, ds.Columns = image.shape
  ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, 'MONOCHROME2'
  ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, BITS, BITS - 1, 0
  ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, 0, 'US'
  ds.WindowCenter, ds.WindowWidth = 2048, 3600
  if syntax == UNCOMPRESSED:
    ds.PixelData = image.astype('<u2').tobytes()
  else:
    ds.PixelData = encapsulate([jpeg_lossless_frame(image)])
    ds['PixelData'].VR = 'OB'
  return ds


def _write_task(task):
  paths, label, size, seed = task
  image = pixels(label, size, seed)
  for syntax, path in paths.items():
    dataset(image, syntax, patient=f'P{seed[-1]:05d}').save_as(path, enforce_file_format=True)


def generate(root: str, n: int, size: int, processes: int) -> dict:
  """~n DICOM files of size x size in each syntax, in the seed layout (10% under Test/) under
  root/<syntax>/; returns {syntax: (folder, count)}."""
  per_class = n // len(labels.CLASS_NAMES)
  test = max(1, per_class // 10)
  tasks = []
  for label, name in enumerate(labels.CLASS_NAMES):
    for i in range(per_class):
      split = demo_data.SPLIT_FOLDERS[1 if i < test else 0]
      paths = {}
      for syntax in SYNTAXES:
        folder = os.path.join(root, syntax, split, name)
        os.makedirs(folder, exist_ok=True)
        paths[syntax] = os.path.join(folder, f'{label}_{i:05d}.dcm')
      tasks.append((paths, label, size, [7, label, i]))
  with multiprocessing.get_context('spawn').Pool(processes) as pool:
    pool.map(_write_task, tasks, chunksize=4)
  count = len(tasks)
  return {syntax: (os.path.join(root, syntax), count) for syntax in SYNTAXES}
