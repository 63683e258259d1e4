"""Files of small per-file records (JSON lines of flat rows) that the ingestion stages hand on.

The stages pass each other the names of these files, not the records: the runner then holds one
name per chunk of candidates or per shard, whatever the number of images (the DirectRunner keeps
every PCollection in memory), and each worker holds one record at a time. The files live in the
run's working folder on the output's file system (local disk, gs://, ...), so any runner's
workers can read them.
"""

import json
from typing import Iterable, Iterator, List, Optional, Sequence

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

Row = Sequence  # a JSON array: strings, numbers, null and nested arrays


class Writer:
  """Writes rows to `uri`, one JSON array per line; a context manager."""

  def __init__(self, uri: str):
    self.uri = uri
    self.count = 0
    self._file = FileSystems.create(
      uri, mime_type='application/jsonl', compression_type=CompressionTypes.UNCOMPRESSED
    )

  def add(self, row: Row) -> None:
    self._file.write(json.dumps(row, separators=(',', ':')).encode() + b'\n')
    self.count += 1

  def close(self) -> None:
    self._file.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


class ChunkWriter:
  """Writes rows to folder/chunk-00000, folder/chunk-00001, ... of at most rows_per_chunk rows
  each, a row added with a weight counting as that many rows."""

  def __init__(self, folder: str, rows_per_chunk: int):
    self.uris: List[str] = []
    self.sizes: List[int] = []  # rows per chunk
    self.count = 0
    self._folder = folder
    self._rows_per_chunk = rows_per_chunk
    self._writer: Optional[Writer] = None
    self._load = 0  # the weight of the current chunk's rows

  def add(self, row: Row, weight: int = 1) -> None:
    if not self._writer or self._load + weight > self._rows_per_chunk:
      self.close()
      self._writer = Writer(FileSystems.join(self._folder, f'chunk-{len(self.uris):05d}'))
      self.uris.append(self._writer.uri)
      self.sizes.append(0)
      self._load = 0
    self._writer.add(row)
    self._load += weight
    self.sizes[-1] += 1
    self.count += 1

  def close(self) -> None:
    if self._writer:
      self._writer.close()
      self._writer = None

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def write(uri: str, rows: Iterable[Row]) -> None:
  with Writer(uri) as writer:
    for row in rows:
      writer.add(row)


def read(uri: str) -> Iterator[list]:
  """The rows of a file written by `Writer`, one at a time."""
  with FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED) as f:
    for line in f:
      yield json.loads(line)
