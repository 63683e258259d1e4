"""The ingestion report: one manifest row per file found, counts that reconcile, and the checks."""

import collections
import dataclasses
import itertools
import json
from typing import Dict, Iterable, Iterator, List, Optional, Sequence

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
import pyarrow as pa
import pyarrow.parquet as pq

from components import labels
from components.ingestion import confounding
from components.ingestion import file_table
from components.ingestion import subjects
from components.ingestion.file_table import DUPLICATE
from components.ingestion.file_table import FileTable
from components.ingestion.file_table import IGNORED
from components.ingestion.file_table import INGESTED
from components.ingestion.file_table import QUARANTINED
from components.ingestion.options import SPLITS

MANIFEST_FILE = 'manifest.parquet'
SUMMARY_FILE = 'summary.json'
STATUSES = (INGESTED, QUARANTINED, DUPLICATE, IGNORED)
TRANSCODED_TO_PNG = 'transcoded_to_png'
ROWS_PER_GROUP = 512  # Parquet row group: the rows held at once while writing the manifest

SCHEMA = pa.schema(
  [
    ('path', pa.string()),
    ('sha256', pa.string()),
    ('label', pa.int64()),
    ('label_name', pa.string()),
    ('split', pa.string()),
    ('status', pa.string()),
    ('reason', pa.string()),
    ('detail', pa.string()),
    ('format', pa.string()),
    ('stored_format', pa.string()),
    ('height', pa.int64()),
    ('width', pa.int64()),
    ('channels', pa.int64()),
    ('size_bytes', pa.int64()),
    ('source', pa.string()),
    ('group', pa.string()),
    ('duplicate_of', pa.string()),
  ]
  + [(f.name, pa.string()) for f in dataclasses.fields(subjects.Subject)]
)


def _manifest_row(row) -> Dict:
  """The manifest row of a planned FileTable row."""
  reason = row['fate_reason']
  if row['status'] == INGESTED and file_table.to_inspected(row).info.transcoded:
    reason = TRANSCODED_TO_PNG
  return dict(
    path=row['path'],
    sha256=row['sha256'],
    label=row['label'],
    label_name=labels.CLASS_NAMES[row['label']] if row['label'] >= 0 else '',
    split=row['split'],
    status=row['status'],
    reason=reason,
    detail=row['fate_detail'],
    format=row['format'] or '',
    stored_format=row['stored_format'] or '',
    height=row['height'] or 0,
    width=row['width'] or 0,
    channels=row['channels'] or 0,
    size_bytes=row['size'],
    source=row['source'],
    group=row['group'],
    duplicate_of=row['duplicate_of'],
    **{f.name: row[f.name] for f in dataclasses.fields(subjects.Subject)},
  )


def rows(table: FileTable) -> Iterator[Dict]:
  """One manifest row per file found (image candidates with their fate, and the ignored files),
  sorted by path."""
  return map(_manifest_row, table.rows())


def summarize(
  manifest_rows: Iterable[Dict],
  input_base: str,
  spans: Sequence[int],
  max_bad_fraction: float,
  unknown_folders: Sequence[str] = (),
  metadata_csv: Optional[Dict] = None,
  allow_confounded_sources: bool = False,
) -> Dict:
  """Counts by status, split, class, source and reason (one pass); files_found == sum of the
  status counts. `metadata_csv`: metadata_csv.apply's counts; `confounding`: see confounding.py."""
  status = collections.Counter()
  splits = {s: dict.fromkeys(labels.CLASS_NAMES, 0) for s in SPLITS}
  sources = {
    s: collections.defaultdict(lambda: dict.fromkeys(labels.CLASS_NAMES, 0)) for s in SPLITS
  }
  reasons = {s: collections.Counter() for s in STATUSES}
  for r in manifest_rows:
    status[r['status']] += 1
    if r['status'] == INGESTED:
      splits[r['split']][r['label_name']] += 1
      sources[r['split']][r['source']][r['label_name']] += 1
    if r['reason']:
      reasons[r['status']][r['reason']] += 1
  for counts in splits.values():
    counts['total'] = sum(counts.values())
  image_files = status[INGESTED] + status[QUARANTINED] + status[DUPLICATE]
  return {
    'input_base': input_base,
    'spans': list(spans),
    'files_found': sum(status.values()),
    'status': {s: status[s] for s in STATUSES},
    'splits': splits,
    'classes': {c: sum(splits[s][c] for s in SPLITS) for c in labels.CLASS_NAMES},
    'reasons': {s: dict(sorted(reasons[s].items())) for s in STATUSES if reasons[s]},
    'image_files': image_files,
    'bad_fraction': status[QUARANTINED] / image_files if image_files else 0.0,
    'max_bad_fraction': max_bad_fraction,
    'unknown_class_folders': list(unknown_folders),
    'metadata_csv': metadata_csv,
    'confounding': confounding.summarize(sources, allow_confounded_sources),
  }


def patients(table: FileTable) -> Dict[str, int]:
  """The summary's `patients`: ingested images with a known patient and their patients; patients
  with images in both Train/ and Test/ folders (all kept in the test split, as duplicates are)
  and their Train/ images ingested into the test split."""
  count = lambda sql, *params: table.db.execute(sql, params).fetchone()[0]
  ingested = f"FROM files WHERE patient_hash != '' AND status = '{INGESTED}'"
  both = (
    "SELECT patient_hash FROM files WHERE patient_hash != '' AND status IN (?, ?) "
    "GROUP BY patient_hash HAVING SUM(role = 'train') > 0 AND SUM(role = 'test') > 0"
  )
  return dict(
    images=count(f'SELECT COUNT(*) {ingested}'),
    patients=count(f'SELECT COUNT(DISTINCT patient_hash) {ingested}'),
    in_train_and_test=count(f'SELECT COUNT(*) FROM ({both})', INGESTED, DUPLICATE),
    train_images_in_test=count(
      f"SELECT COUNT(*) {ingested} AND role = 'train' AND split = 'test' "
      f'AND patient_hash IN ({both})',
      INGESTED,
      DUPLICATE,
    ),
  )


def write_report(table: FileTable, report_uri: str, *summary_args) -> Dict:
  """Writes report_uri/manifest.parquet (the table's rows, a row group per ROWS_PER_GROUP rows) and
  report_uri/summary.json (summarize(rows, *summary_args), with `patients`); returns the
  summary."""
  manifest_rows = rows(table)
  with (
    FileSystems.create(FileSystems.join(report_uri, MANIFEST_FILE)) as f,
    pq.ParquetWriter(f, SCHEMA) as writer,
  ):
    for batch in iter(lambda: list(itertools.islice(manifest_rows, ROWS_PER_GROUP)), []):
      writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=SCHEMA))
  summary = dict(summarize(rows(table), *summary_args), patients=patients(table))
  with FileSystems.create(FileSystems.join(report_uri, SUMMARY_FILE)) as f:
    f.write(json.dumps(summary, indent=1).encode())
  return summary


def read_summary(report_uri: str) -> Dict:
  path = FileSystems.join(report_uri, SUMMARY_FILE)
  with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
    return json.loads(f.read())


def read_rows(report_uri: str, statuses: Sequence[str], columns: Sequence[str]) -> List[Dict]:
  """The `columns` of the manifest rows whose status is one of `statuses`, in the manifest's order
  (by path); pyarrow applies the filter as it reads."""
  path = FileSystems.join(report_uri, MANIFEST_FILE)
  with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
    table = pq.read_table(f, columns=list(columns), filters=[('status', 'in', list(statuses))])
  return table.to_pylist()


def accounting(summary: Dict) -> str:
  """Where every file found went, in one line."""
  s = summary['status']
  return (
    f'{summary["files_found"]} files found = {s[INGESTED]} ingested + {s[QUARANTINED]} '
    f'quarantined + {s[DUPLICATE]} duplicates + {s[IGNORED]} ignored (not images)'
  )


def format_summary(summary: Dict) -> str:
  """A readable multi-line account of the run for the log."""
  lines = [
    f'Ingestion of {summary["input_base"]}'
    + (f' spans {summary["spans"]}' if summary['spans'] else '')
    + f': {accounting(summary)}'
  ]
  width = max(len(c) for c in labels.CLASS_NAMES)
  lines.append(
    '  split  ' + '  '.join(c.rjust(width) for c in labels.CLASS_NAMES) + '  total'.rjust(width)
  )
  for split, counts in summary['splits'].items():
    lines.append(
      f'  {split:<5}  '
      + '  '.join(str(counts[c]).rjust(width) for c in labels.CLASS_NAMES)
      + str(counts['total']).rjust(width + 2)
    )
  for status, reasons in summary['reasons'].items():
    lines.append(f'  {status}: ' + ', '.join(f'{r} {n}' for r, n in reasons.items()))
  known = summary.get('patients')
  if known and known['images']:
    lines.append(
      f'  patients: {known["images"]} images of {known["patients"]} patients; '
      f'{known["in_train_and_test"]} patients with images in Train/ and Test/ kept in test '
      f'({known["train_images_in_test"]} Train/ images moved to the test split)'
    )
  if summary['unknown_class_folders']:
    lines.append(f'  unknown class folders skipped: {summary["unknown_class_folders"]}')
  csv_counts = summary['metadata_csv']
  if csv_counts:
    lines.append(
      f'  metadata CSV {csv_counts["path"]}: metadata of {csv_counts["files_listed"]} files, '
      f'{csv_counts["files_not_listed"]} image files not listed (folder source kept), '
      f'{csv_counts["unknown_rows"]} rows naming no image file {csv_counts["unknown_examples"]}, '
      f'{csv_counts["ambiguous_rows"]} ambiguous names {csv_counts["ambiguous_examples"]}'
    )
  return '\n'.join(lines + confounding.describe(summary['confounding']))


class MissingClassError(ValueError):
  """A split lacks a class: no model could be trained, selected and tested on every class."""


def _missing_classes(summary: Dict) -> Optional[MissingClassError]:
  splits = summary['splits']
  missing = {split: [c for c in labels.CLASS_NAMES if not splits[split][c]] for split in SPLITS}
  missing = {split: classes for split, classes in missing.items() if classes}
  if not missing:
    return None
  lacks = '; '.join(f'{split} lacks {", ".join(classes)}' for split, classes in missing.items())
  counts = '; '.join(
    f'{split} ' + ', '.join(f'{c} {splits[split][c]}' for c in labels.CLASS_NAMES)
    for split in SPLITS
  )
  return MissingClassError(
    f'Every split needs images of every class, but {lacks} (images per class: {counts}). '
    f'Add images of the missing classes (Test/ feeds the test split, Train/ the train and eval '
    f'splits, a single root of class folders all three).'
  )


def refusal(summary: Dict, report_uri: str) -> Optional[ValueError]:
  """Why the ingested data cannot be used: too many quarantined files, a split lacking a class, or
  a test class confounded with its source (unless allowed)."""
  s = summary['status']
  if summary['bad_fraction'] > summary['max_bad_fraction']:
    reasons = ', '.join(f'{r} {n}' for r, n in summary['reasons'].get(QUARANTINED, {}).items())
    return ValueError(
      f'{s[QUARANTINED]} of {summary["image_files"]} image files ({summary["bad_fraction"]:.1%}) '
      f'were quarantined ({reasons}), more than '
      f'max_bad_fraction={summary["max_bad_fraction"]:.1%}. '
      f'Every file and its reason is in {FileSystems.join(report_uri, MANIFEST_FILE)}.'
    )
  return _missing_classes(summary) or confounding.refusal(summary['confounding'])


def check(summary: Dict, report_uri: str) -> None:
  """Raises `refusal(summary, report_uri)`, if any."""
  error = refusal(summary, report_uri)
  if error:
    raise error
