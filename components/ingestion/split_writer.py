"""Writes each split as deterministic shards of uncompressed TFRecords, one folder per split.

The caller numbers the shards (`shard_keys`: each split's items in a given order, cut into
contiguous shards of at most RECORDS_PER_SHARD), so the same input gives the same files, byte
for byte, on any runner. `WriteSplits` groups the items by shard, writes each shard to a
temporary file (items in their order, encoded by the caller's function) and a last step gives
the files of the attempts that committed their final names, `Split-{split}/data_tfrecord-SSSSS-of-NNNNN`,
then removes the temporary folder with the files of any failed or retried attempt (the protocol
of Beam's file sinks). Grouping only moves small per-file records; the image bytes are read and
encoded inside the shard writer, one at a time. Uncompressed: gzip cannot shrink PNG/JPEG bytes
(measured +0.03%) and costs more CPU than validating them; TFX detects gzip by the '.gz'
extension, so these read as plain TFRecords.
"""
import struct
import uuid
from typing import Callable, Dict, Iterable, Iterator, List, Sequence, Tuple, TypeVar

import apache_beam as beam
from apache_beam.io import tfrecordio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

FILE_PREFIX = 'data_tfrecord'
RECORDS_PER_SHARD = 256  # ~170 MB of 1024 px PNGs; a dozen shards per 4,000 images keep every worker busy

T = TypeVar('T')
ShardKey = Tuple[str, int, int]  # (split, shard index, shard count)
Keyed = Tuple[ShardKey, Tuple[int, T]]  # an item with its shard and its position in the split


def _masked_crc32c(data: bytes) -> bytes:
  return struct.pack('<I', tfrecordio._TFRecordUtil._masked_crc32c(data))  # pylint: disable=protected-access


def write_record(file, record: bytes) -> None:
  """One TFRecord frame: length, its CRC, the record, its CRC. Beam's _TFRecordUtil.write_record
  joins the four into one new bytes object first, a copy of every image this avoids."""
  length = struct.pack('<Q', len(record))
  file.write(length + _masked_crc32c(length))
  file.write(record)
  file.write(_masked_crc32c(record))


def shard_keys(items_by_split: Dict[str, Sequence[T]],
               records_per_shard: int = RECORDS_PER_SHARD) -> Iterator[Keyed[T]]:
  """(shard key, (position, item)) for every item: each split's sequence cut into equal contiguous shards."""
  for split, items in items_by_split.items():
    count = -(-len(items) // records_per_shard)
    for position, item in enumerate(items):
      yield (split, position * count // len(items), count), (position, item)


def split_folder(examples_uri: str, split: str) -> str:
  return FileSystems.join(examples_uri, f'Split-{split}')


def shard_path(examples_uri: str, key: ShardKey) -> str:
  split, index, count = key
  return FileSystems.join(split_folder(examples_uri, split), f'{FILE_PREFIX}-{index:05d}-of-{count:05d}')


class _WriteShard(beam.DoFn):
  """Writes one shard's items, in position order, to a temporary file; yields (temporary, final) path."""

  def __init__(self, examples_uri: str, temp_dir: str, encode: Callable[[T], bytes]):
    self._examples_uri = examples_uri
    self._temp_dir = temp_dir
    self._encode = encode

  def process(self, shard: Tuple[ShardKey, Iterable[Tuple[int, T]]]):
    key, items = shard
    temp = FileSystems.join(self._temp_dir, uuid.uuid4().hex)
    with FileSystems.create(temp, compression_type=CompressionTypes.UNCOMPRESSED) as f:
      for _, item in sorted(items, key=lambda positioned: positioned[0]):
        write_record(f, self._encode(item))
    yield temp, shard_path(self._examples_uri, key)


def _commit(written: List[Tuple[str, str]], examples_uri: str, splits: Iterable[str], temp_dir: str) -> None:
  """Creates every split folder, moves the committed shard files to their final names, drops the rest."""
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
  """(shard key, (position, item)) pairs (see `shard_keys`) -> `{examples_uri}/Split-{split}/data_tfrecord-*`.

  `encode` turns an item into a serialized record. Every split in `splits` gets a folder, even
  one that receives no records.
  """

  def __init__(self, examples_uri: str, splits: Iterable[str], encode: Callable[[T], bytes]):
    super().__init__()
    self._examples_uri = examples_uri
    self._splits = tuple(splits)
    self._encode = encode

  def expand(self, keyed_items):
    temp_dir = FileSystems.join(self._examples_uri, f'.temp-{uuid.uuid4().hex}')  # created by the first write
    return (keyed_items
            | 'GroupByShard' >> beam.GroupByKey()
            | 'WriteShards' >> beam.ParDo(_WriteShard(self._examples_uri, temp_dir, self._encode))
            | 'CollectFiles' >> beam.combiners.ToList()
            | 'Commit' >> beam.Map(_commit, self._examples_uri, self._splits, temp_dir))
