"""The optional metadata CSV: the source (hospital, repository) of each listed image.

Header names are matched ignoring case, spaces, '_' and '-'. The file column is `path`, `file` or
`filename`; a value is a path relative to the data root ('/'-separated, e.g.
`siteA/COVID/img1.png`), or a bare file name, with or without its extension (`img1.png`, `img1`,
case ignored), that names exactly one image file. The `source` column gives the file's source,
which replaces the one of its folder; rows with an empty source are skipped. Files the CSV does not
list keep their folder's source. Rows naming no image file, or several (an ambiguous bare name),
are counted in the ingestion summary with a few examples. A file listed twice takes its last row.
"""

import csv
import hashlib
import io
import posixpath
from typing import Dict, Iterator, List, Tuple

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

FILE_COLUMNS = ('path', 'file', 'filename')
SOURCE_COLUMN = 'source'
EXAMPLES = 5  # rows quoted in the summary for each kind of unmatched row
_CANDIDATE = 'status IS NULL'  # the FileTable's image files before the split plan


def _read_text(uri: str) -> str:
  if not FileSystems.exists(uri):
    raise ValueError(f'metadata_csv {uri!r} does not exist; pass the path of an existing CSV file')
  with FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED) as f:
    data = f.read()
  try:
    return data.decode('utf-8-sig')
  except UnicodeDecodeError:
    raise ValueError(f'metadata_csv {uri!r} is not UTF-8 text; save it as a UTF-8 CSV') from None


def _key(name: str) -> str:
  return ''.join(c for c in name.lower() if c not in ' _-')


def _columns(header: List[str], uri: str) -> Tuple[int, int]:
  """Indexes of the file and source columns of `header`; raises ValueError naming the fix."""
  keys = [_key(name) for name in header]
  file_column = next((keys.index(k) for k in FILE_COLUMNS if k in keys), None)
  if file_column is None or SOURCE_COLUMN not in keys:
    raise ValueError(
      f'metadata_csv {uri!r} needs a file column ({" or ".join(FILE_COLUMNS)}) and a '
      f'{SOURCE_COLUMN!r} column, found columns {header}; rename its header'
    )
  return file_column, keys.index(SOURCE_COLUMN)


def _checked_text(uri: str) -> str:
  """The CSV's text; raises ValueError when it is missing or lacks a column."""
  text = _read_text(uri)
  _columns(next(csv.reader(io.StringIO(text)), []), uri)
  return text


def digest(uri: str) -> str:
  """sha256 of the CSV's content (a cache key); raises ValueError on an unusable CSV."""
  return hashlib.sha256(_checked_text(uri).encode()).hexdigest()


def stage(uri: str, folder: str) -> str:
  """Copies the CSV (checked) into `folder`, which the Beam workers can read (the CSV itself may
  be on the launching machine only); returns the copy's path."""
  copy = FileSystems.join(folder, 'metadata.csv')
  with FileSystems.create(copy) as f:
    f.write(_checked_text(uri).encode())
  return copy


def read(uri: str) -> Iterator[Tuple[str, str]]:
  """(file, source) of each row with a source; raises ValueError on an unusable CSV."""
  reader = csv.reader(io.StringIO(_read_text(uri)))
  file_column, source_column = _columns(next(reader, []), uri)
  for row in reader:
    if len(row) > max(file_column, source_column) and row[source_column].strip():
      name = row[file_column].strip().replace('\\', '/')
      yield name.removeprefix('./'), row[source_column].strip()


def _names(path: str) -> Tuple[str, str]:
  name = posixpath.basename(path).lower()
  return name, posixpath.splitext(name)[0]


def apply(db, uri: str) -> Dict:
  """Sets the source of the image files of the FileTable `db` that the CSV lists; returns the
  counts of the summary's `metadata_csv` entry (without its `path`)."""
  db.executescript(
    """
    CREATE TEMP TABLE listed (n INTEGER PRIMARY KEY, file TEXT, source TEXT, path TEXT);
    CREATE TEMP TABLE names (name TEXT, path TEXT);
    """
  )
  db.executemany('INSERT INTO listed (file, source) VALUES (?, ?)', read(uri))
  db.executemany(
    'INSERT INTO names VALUES (?, ?)',
    (
      (name, path)
      for (path,) in db.execute(f'SELECT path FROM files WHERE {_CANDIDATE}')
      for name in set(_names(path))
    ),
  )
  db.executescript(
    f"""
    CREATE INDEX temp.names_name ON names (name);
    UPDATE listed SET path = file WHERE file IN (SELECT path FROM files WHERE {_CANDIDATE});
    UPDATE listed SET path = (SELECT MIN(path) FROM names WHERE name = lower(listed.file))
      WHERE path IS NULL AND instr(file, '/') = 0
        AND (SELECT COUNT(DISTINCT path) FROM names WHERE name = lower(listed.file)) = 1;
    UPDATE files SET source = (SELECT source FROM listed WHERE listed.path = files.path
                               ORDER BY n DESC LIMIT 1)
      WHERE {_CANDIDATE} AND path IN (SELECT path FROM listed);
    """
  )

  def unmatched(condition: str) -> Tuple[int, List[str]]:
    where = f'path IS NULL AND {condition}'
    count = db.execute(f'SELECT COUNT(*) FROM listed WHERE {where}').fetchone()[0]
    examples = db.execute(f'SELECT file FROM listed WHERE {where} ORDER BY n LIMIT {EXAMPLES}')
    return count, [file for (file,) in examples]

  ambiguous = "instr(file, '/') = 0 AND file != '' AND lower(file) IN (SELECT name FROM names)"
  unknown_rows, unknown_examples = unmatched(f'NOT ({ambiguous})')
  ambiguous_rows, ambiguous_examples = unmatched(ambiguous)
  listed_files = db.execute('SELECT COUNT(DISTINCT path) FROM listed').fetchone()[0]
  images = db.execute(f'SELECT COUNT(*) FROM files WHERE {_CANDIDATE}').fetchone()[0]
  counts = dict(
    rows=db.execute('SELECT COUNT(*) FROM listed').fetchone()[0],
    files_listed=listed_files,
    files_not_listed=images - listed_files,
    unknown_rows=unknown_rows,
    unknown_examples=unknown_examples,
    ambiguous_rows=ambiguous_rows,
    ambiguous_examples=ambiguous_examples,
  )
  db.executescript('DROP TABLE temp.listed; DROP TABLE temp.names;')
  return counts
