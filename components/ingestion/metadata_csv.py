"""The optional metadata CSV: the source (hospital, repository) and subgroups of listed images.

Header names are matched ignoring case, spaces, '_' and '-'. The file column is `path`, `file` or
`filename`; a value is a path relative to the data root ('/'-separated, e.g.
`siteA/COVID/img1.png`), or a bare file name, with or without its extension (`img1.png`, `img1`,
case ignored), that names exactly one image file. At least one metadata column is needed (COLUMNS):
`source` (replaces the folder's), `view` (e.g. PA, AP, LL), `sex` (M, F, O or spelled out), `age`
(years, or a DICOM age such as 045Y; kept as its 10-year band), `manufacturer` and `patient_id`
(kept only as its salted hash: images of one patient stay in one split). A value replaces the
folder's or the DICOM file's; an empty cell changes nothing. Rows naming no image file, or several
(an ambiguous bare name), are counted in the ingestion summary with a few examples. A file listed
twice takes the last non-empty value of each column.
"""

import csv
import io
import posixpath
from typing import Dict, Iterator, List, Tuple

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from components.ingestion import subjects

FILE_COLUMNS = ('path', 'file', 'filename')
COLUMNS = {  # header (as matched) -> the FileTable column it fills
  'source': 'source',
  'view': 'view_position',
  'sex': 'sex',
  'age': 'age_band',
  'manufacturer': 'manufacturer',
  'patientid': 'patient_hash',
}
PATIENT_COLUMN = 'patientid'
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


def _columns(header: List[str], uri: str) -> Tuple[int, Dict[str, int]]:
  """Index of the file column of `header`, and {metadata column: index}; raises ValueError naming
  the fix."""
  keys = [_key(name) for name in header]
  file_column = next((keys.index(k) for k in FILE_COLUMNS if k in keys), None)
  found = {k: keys.index(k) for k in COLUMNS if k in keys}
  if file_column is None or not found:
    raise ValueError(
      f'metadata_csv {uri!r} needs a file column ({" or ".join(FILE_COLUMNS)}) and at least one '
      f'of the columns source, view, sex, age, manufacturer, patient_id, found columns {header}; '
      f'rename its header'
    )
  return file_column, found


def _checked_text(uri: str) -> str:
  """The CSV's text; raises ValueError when it is missing or lacks a column."""
  text = _read_text(uri)
  _columns(next(csv.reader(io.StringIO(text)), []), uri)
  return text


def check(uri: str) -> None:
  """Raises ValueError when the CSV is missing or lacks a column."""
  _checked_text(uri)


def stage(uri: str, folder: str, salt: bytes) -> str:
  """Copies the CSV (checked) into `folder`, which the Beam workers can read (the CSV itself may
  be on the launching machine only), its patient ids replaced by their salted hashes; returns the
  copy's path."""
  reader = csv.reader(io.StringIO(_checked_text(uri)))
  header = next(reader)
  patient = _columns(header, uri)[1].get(PATIENT_COLUMN)
  out = io.StringIO()
  writer = csv.writer(out)
  writer.writerow(header)
  for row in reader:
    if patient is not None and len(row) > patient:
      row[patient] = subjects.patient_hash(row[patient], salt)
    writer.writerow(row)
  copy = FileSystems.join(folder, 'metadata.csv')
  with FileSystems.create(copy) as f:
    f.write(out.getvalue().encode())
  return copy


def _value(column: str, cell: str) -> str:
  """A cell as the FileTable holds it ('' when empty: nothing to change)."""
  cell = cell.strip()
  if not cell or COLUMNS[column] in ('source', 'patient_hash'):
    return cell
  return subjects.normalized(COLUMNS[column], cell)


def read(uri: str) -> Iterator[Tuple[str, Dict[str, str]]]:
  """(file, {FileTable column: value}) of each row with a value; raises ValueError on an unusable
  CSV. The patient_id column is taken as it is (stage() hashes it)."""
  reader = csv.reader(io.StringIO(_read_text(uri)))
  file_column, columns = _columns(next(reader, []), uri)
  for row in reader:
    cells = {COLUMNS[k]: _value(k, row[i]) for k, i in columns.items() if i < len(row)}
    if len(row) > file_column and any(cells.values()):
      name = row[file_column].strip().replace('\\', '/')
      yield name.removeprefix('./'), cells


def _names(path: str) -> Tuple[str, str]:
  name = posixpath.basename(path).lower()
  return name, posixpath.splitext(name)[0]


def apply(db, uri: str) -> Dict:
  """Sets the metadata of the image files of the FileTable `db` that the CSV lists; returns the
  counts of the summary's `metadata_csv` entry (without its `path`)."""
  columns = tuple(COLUMNS.values())
  values = ', '.join(f"{c} TEXT NOT NULL DEFAULT ''" for c in columns)
  db.executescript(
    f"""
    CREATE TEMP TABLE listed (n INTEGER PRIMARY KEY, file TEXT, path TEXT, {values});
    CREATE TEMP TABLE names (name TEXT, path TEXT);
    """
  )
  for file, cells in read(uri):
    db.execute(
      f'INSERT INTO listed (file, {", ".join(cells)}) VALUES (?{", ?" * len(cells)})',
      (file, *cells.values()),
    )
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
    """
  )
  for c in columns:
    db.execute(
      f"""UPDATE files SET {c} = (SELECT {c} FROM listed WHERE listed.path = files.path
                                   AND {c} != '' ORDER BY n DESC LIMIT 1)
          WHERE {_CANDIDATE} AND path IN (SELECT path FROM listed WHERE {c} != '')"""
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
