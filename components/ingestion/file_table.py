"""Every file of one ingestion run and its fate, in an SQLite table in a temporary local file.

The split plan (splitting.assign), the report (manifest) and the shard lists work on this table
with SQL and read it one row at a time, so their memory is SQLite's page cache (CACHE_KIB)
whatever the number of files. The file is deleted on close.
"""

import dataclasses
import os
import sqlite3
import tempfile
from typing import Iterable, Iterator

from components.ingestion import image_check
from components.ingestion import subjects
from components.ingestion.discovery import FileEntry
from components.ingestion.inspection import Inspected

INGESTED, QUARANTINED, DUPLICATE, IGNORED = 'ingested', 'quarantined', 'duplicate', 'ignored'
CACHE_KIB = 1024  # SQLite's page cache: the table's memory, whatever its size

_ENTRY = tuple(
  f.name for f in dataclasses.fields(FileEntry)
)  # path, uri, size, source, label, role, group, ...
_INFO = tuple(f.name for f in dataclasses.fields(image_check.ImageInfo))
_SUBJECT = tuple(f.name for f in dataclasses.fields(subjects.Subject))
_PIXELS = tuple(f.name for f in dataclasses.fields(image_check.PixelSummary))
_SCHEMA = """
CREATE TABLE files (
  {entry},  -- the FileEntry
  sha256 TEXT NOT NULL DEFAULT '', {info},  -- inspection; NULL info for a bad file
  reason TEXT NOT NULL DEFAULT '', detail TEXT NOT NULL DEFAULT '',
  {subject},  -- a DICOM's or the metadata CSV's
  {pixels},  -- the stored pixels' summary made by inspection (DICOM), else NULL
  component TEXT,  -- splitting: the set of files linked by content or group
  status TEXT, split TEXT NOT NULL DEFAULT '', fate_reason TEXT NOT NULL DEFAULT '',  -- the fate
  fate_detail TEXT NOT NULL DEFAULT '', duplicate_of TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (path)
);
""".format(
  entry=', '.join(f'"{name}"' for name in _ENTRY),
  info=', '.join(f'"{name}"' for name in _INFO),
  pixels=', '.join(f'"{name}"' for name in _PIXELS),
  subject=', '.join(
    f'"{f.name}" TEXT NOT NULL DEFAULT \'{f.default}\''
    for f in dataclasses.fields(subjects.Subject)
  ),
)


class FileTable:
  """The files table; use as a context manager (or call close) to delete its file."""

  def __init__(self):
    self._folder = tempfile.TemporaryDirectory(prefix='cxr-ingestion-')
    self.db = sqlite3.connect(os.path.join(self._folder.name, 'files.sqlite'), isolation_level=None)
    self.db.row_factory = sqlite3.Row
    self.db.executescript(
      f'PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-{CACHE_KIB};' + _SCHEMA
    )

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  def close(self):
    self.db.close()
    self._folder.cleanup()

  def add_ignored(self, entries: Iterable[FileEntry]) -> None:
    """Files found that are not image candidates: status IGNORED, their reason as the fate's."""
    columns = _ENTRY + ('status', 'fate_reason')
    self._insert(columns, (dataclasses.astuple(e) + (IGNORED, e.ignored_reason) for e in entries))

  def add_inspected(self, items: Iterable[Inspected]) -> None:
    columns = _ENTRY + _INFO + _SUBJECT + _PIXELS + ('sha256', 'reason', 'detail')
    no_info, no_pixels = (None,) * len(_INFO), (None,) * len(_PIXELS)
    self._insert(
      columns,
      (
        dataclasses.astuple(i.entry)
        + (dataclasses.astuple(i.info) if i.info else no_info)
        + dataclasses.astuple(i.subject)
        + (dataclasses.astuple(i.pixels) if i.pixels else no_pixels)
        + (i.sha256, i.reason, i.detail)
        for i in items
      ),
    )

  def _insert(self, columns, rows) -> None:
    names = ', '.join(f'"{c}"' for c in columns)
    self.db.execute('BEGIN')
    self.db.executemany(
      f'INSERT INTO files ({names}) VALUES ({", ".join("?" * len(columns))})', rows
    )
    self.db.execute('COMMIT')

  def rows(self, where: str = '1', params=()) -> Iterator[sqlite3.Row]:
    """The rows matching `where`, sorted by path, streamed."""
    return self.db.execute(f'SELECT * FROM files WHERE {where} ORDER BY path', params)

  def count(self, where: str = '1', params=()) -> int:
    return self.db.execute(f'SELECT COUNT(*) FROM files WHERE {where}', params).fetchone()[0]

  def ingested(self, split: str) -> Iterator[Inspected]:
    """The files ingested into `split`, sorted by path."""
    for row in self.rows('status = ? AND split = ?', (INGESTED, split)):
      yield to_inspected(row)


def to_inspected(row: sqlite3.Row) -> Inspected:
  info = image_check.ImageInfo(*(row[n] for n in _INFO)) if row['format'] is not None else None
  pixels = row[_PIXELS[0]] is not None
  return Inspected(
    FileEntry(*(row[n] for n in _ENTRY)),
    row['sha256'],
    info,
    row['reason'],
    row['detail'],
    subjects.Subject(*(row[n] for n in _SUBJECT)),
    image_check.PixelSummary(*(row[n] for n in _PIXELS)) if pixels else None,
  )
