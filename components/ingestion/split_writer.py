"""Writes (split, serialized tf.Example) pairs as uncompressed TFRecords, one folder per split.

One DoFn serves every split: each bundle streams into one temporary file per split it meets,
and a last step gives the files of the bundles that committed their final names,
`Split-{split}/data_tfrecord-SSSSS-of-NNNNN`, then removes the temporary folder together with
the files of any failed or retried bundle attempt (the protocol of Beam's file sinks). Three Beam
TFRecord sinks, one per split, would add about 0.5 s of graph construction and stage start-up to
every run. Uncompressed: gzip cannot shrink PNG/JPEG bytes (measured +0.03%) and costs more CPU
than validating them; TFX detects gzip by the '.gz' extension, so these read as plain TFRecords.
"""
import struct
import uuid
from typing import Dict, Iterable, List, Tuple

import apache_beam as beam
from apache_beam.io import tfrecordio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms import window
from apache_beam.utils.windowed_value import WindowedValue

FILE_PREFIX = 'data_tfrecord'


def _masked_crc32c(data: bytes) -> bytes:
  return struct.pack('<I', tfrecordio._TFRecordUtil._masked_crc32c(data))  # pylint: disable=protected-access


def write_record(file, record: bytes) -> None:
  """One TFRecord frame: length, its CRC, the record, its CRC. Beam's _TFRecordUtil.write_record
  joins the four into one new bytes object first, a copy of every image this avoids."""
  length = struct.pack('<Q', len(record))
  file.write(length + _masked_crc32c(length))
  file.write(record)
  file.write(_masked_crc32c(record))


class _WriteBundleFiles(beam.DoFn):
  """Appends each (split, record) to this bundle's temporary file of that split; yields (split, path)."""

  def __init__(self, temp_dir: str):
    self._temp_dir = temp_dir
    self._files = {}

  def start_bundle(self):
    self._files = {}

  def process(self, split_and_record: Tuple[str, bytes]):
    split, record = split_and_record
    if split not in self._files:
      path = FileSystems.join(self._temp_dir, f'{split}-{uuid.uuid4().hex}')
      self._files[split] = (path, FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED))
    write_record(self._files[split][1], record)

  def finish_bundle(self):
    for split, (path, file) in sorted(self._files.items()):
      file.close()
      yield WindowedValue((split, path), window.GlobalWindow().max_timestamp(), [window.GlobalWindow()])
    self._files = {}


def _commit(written: List[Tuple[str, str]], examples_uri: str, splits: Iterable[str], temp_dir: str) -> Dict:
  """Moves the committed bundle files to their final names; returns split -> file count."""
  counts = {}
  for split in splits:
    paths = sorted(path for s, path in written if s == split)
    folder = FileSystems.join(examples_uri, f'Split-{split}')
    if not FileSystems.exists(folder):
      FileSystems.mkdirs(folder)
    final = [FileSystems.join(folder, f'{FILE_PREFIX}-{i:05d}-of-{len(paths):05d}') for i in range(len(paths))]
    if paths:
      FileSystems.rename(paths, final)
    counts[split] = len(paths)
  if FileSystems.exists(temp_dir):  # absent when no bundle wrote anything
    FileSystems.delete([temp_dir])
  return counts


class WriteSplits(beam.PTransform):
  """(split, serialized example) pairs -> `{examples_uri}/Split-{split}/data_tfrecord-*` for every split.

  Every split in `splits` gets a folder, even one that receives no records.
  """

  def __init__(self, examples_uri: str, splits: Iterable[str]):
    super().__init__()
    self._examples_uri = examples_uri
    self._splits = tuple(splits)

  def expand(self, records):
    temp_dir = FileSystems.join(self._examples_uri, f'.temp-{uuid.uuid4().hex}')  # created by the first write
    return (records
            | 'WriteBundleFiles' >> beam.ParDo(_WriteBundleFiles(temp_dir))
            | 'CollectFiles' >> beam.combiners.ToList()
            | 'Commit' >> beam.Map(_commit, self._examples_uri, self._splits, temp_dir))
