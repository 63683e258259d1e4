"""Writes each split as deterministic shards of uncompressed TFRecords, one folder per split.

The caller cuts each split's rows, in a given order, into contiguous shards of at most
RECORDS_PER_SHARD and writes each shard's rows to a list file (`write_shard_lists`), so the same
input gives the same files, byte for byte, on any runner. `WriteSplits` takes (shard key, list
file) pairs, spreads them over the workers, writes each shard to a temporary file (rows in their
order, encoded by the caller's function, one at a time) and a last step gives the files of the
attempts that committed their final names, `Split-{split}/data_tfrecord-SSSSS-of-NNNNN`, then
removes the temporary folder with the files of any failed or retried attempt (the protocol of
Beam's file sinks). Only shard keys and file names go through the runner. Uncompressed: gzip
cannot shrink PNG/JPEG bytes (measured +0.03%) and costs more CPU than validating them; TFX
detects gzip by the '.gz' extension, so these read as plain TFRecords.
"""

import itertools
import struct
from typing import Callable, Iterable, Iterator, List, Tuple
import uuid

import apache_beam as beam
from apache_beam.io import tfrecordio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from components.ingestion import records

FILE_PREFIX = 'data_tfrecord'
RECORDS_PER_SHARD = (
  256  # ~170 MB of 1024 px PNGs; a dozen shards per 4,000 images keep every worker busy
)

ShardKey = Tuple[str, int, int]  # (split, shard index, shard count)


def _masked_crc32c(data: bytes) -> bytes:
  return struct.pack('<I', tfrecordio._TFRecordUtil._masked_crc32c(data))


def write_record(file, record: bytes) -> None:
  """One TFRecord frame: length, its CRC, the record, its CRC. Beam's _TFRecordUtil.write_record
  joins the four into one new bytes object first, a copy of every image this avoids."""
  length = struct.pack('<Q', len(record))
  file.write(length + _masked_crc32c(length))
  file.write(record)
  file.write(_masked_crc32c(record))


def write_shard_lists(
  split: str,
  rows: Iterable[records.Row],
  n: int,
  folder: str,
  records_per_shard: int = RECORDS_PER_SHARD,
) -> Iterator[Tuple[ShardKey, str]]:
  """Cuts a split's n rows (in their order) into equal contiguous shards, writes each shard's
  rows to folder/{split}-SSSSS-of-NNNNN and yields (shard key, that file) for each."""
  count = -(-n // records_per_shard)
  for index, positioned in itertools.groupby(enumerate(rows), key=lambda p: p[0] * count // n):
    uri = FileSystems.join(folder, f'{split}-{index:05d}-of-{count:05d}')
    records.write(uri, (row for _, row in positioned))
    yield (split, index, count), uri


def split_folder(examples_uri: str, split: str) -> str:
  return FileSystems.join(examples_uri, f'Split-{split}')


def shard_path(examples_uri: str, key: ShardKey) -> str:
  split, index, count = key
  return FileSystems.join(
    split_folder(examples_uri, split), f'{FILE_PREFIX}-{index:05d}-of-{count:05d}'
  )


class _WriteShard(beam.DoFn):
  """Writes one shard's rows, in order, to a temporary file; yields (temporary, final) path."""

  def __init__(self, examples_uri: str, temp_dir: str, encode: Callable[[list], bytes]):
    self._examples_uri = examples_uri
    self._temp_dir = temp_dir
    self._encode = encode

  def process(self, shard: Tuple[ShardKey, str]):
    key, list_uri = shard
    temp = FileSystems.join(self._temp_dir, uuid.uuid4().hex)
    with FileSystems.create(temp, compression_type=CompressionTypes.UNCOMPRESSED) as f:
      for row in records.read(list_uri):
        write_record(f, self._encode(row))
    yield temp, shard_path(self._examples_uri, key)


def _commit(
  written: List[Tuple[str, str]], examples_uri: str, splits: Iterable[str], temp_dir: str
) -> None:
  """Creates every split folder, moves the committed shard files to their final names, drops the
  rest."""
  for split in splits:
    folder = split_folder(examples_uri, split)
    if not FileSystems.exists(folder):
      FileSystems.mkdirs(folder)
  if written:
    temporary, final = zip(*written)
    FileSystems.rename(list(temporary), list(final))
  if FileSystems.exists(temp_dir):  # absent when nothing was written
    FileSystems.delete([temp_dir])


class WriteSplits(beam.PTransform):
  """(shard key, list file) pairs (see `write_shard_lists`) ->
  `{examples_uri}/Split-{split}/data_tfrecord-*`.

  `encode` turns a row of a list file into a serialized record. Every split in `splits` gets a
  folder, even one that receives no records.
  """

  def __init__(self, examples_uri: str, splits: Iterable[str], encode: Callable[[list], bytes]):
    super().__init__()
    self._examples_uri = examples_uri
    self._splits = tuple(splits)
    self._encode = encode

  def expand(self, shard_lists):
    temp_dir = FileSystems.join(
      self._examples_uri, f'.temp-{uuid.uuid4().hex}'
    )  # created by the first write
    return (
      shard_lists
      | 'SpreadShards' >> beam.Reshuffle()
      | 'WriteShards' >> beam.ParDo(_WriteShard(self._examples_uri, temp_dir, self._encode))
      | 'CollectFiles' >> beam.combiners.ToList()
      | 'Commit' >> beam.Map(_commit, self._examples_uri, self._splits, temp_dir)
    )
