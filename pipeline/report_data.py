"""The report's data accounting: what ingestion made of the dataset folder, read from the run's
ingest report (summary.json's counts, manifest.parquet's rows): images per split and class, each
quarantined file with its reason and detail, each duplicate with the file it duplicates (the
manifest's `duplicate_of`: the copy that was kept), each ignored file, the bad fraction.

`data_json` is the model (`cxr report --json`'s `data`, every file listed); `data_section` renders
it as Markdown, listing at most MAX_LISTED files per list and counting the rest, so that a dataset
with thousands of bad files still gives a readable report (the JSON and the manifest hold them
all). Paths are the manifest's: relative to the data root, the summary's `input_base`.
"""

from typing import Any, Dict, List, Optional

from apache_beam.io.filesystems import FileSystems

from components import labels
from components import markdown_text
from components.ingestion import manifest
from pipeline import report_format

MAX_LISTED = 50  # files per list in report.md and report.html
_COLUMNS = ('path', 'status', 'reason', 'detail', 'duplicate_of')
# (JSON key, manifest status, JSON fields with their Markdown column titles, section title)
_LISTS = (
  (
    'quarantined',
    manifest.QUARANTINED,
    {'path': 'file', 'reason': 'reason', 'detail': 'detail'},
    'Quarantined files',
  ),
  (
    'duplicates',
    manifest.DUPLICATE,
    {'path': 'file', 'duplicate_of': 'duplicate of (the copy kept)', 'reason': 'reason'},
    'Duplicates',
  ),
  ('ignored', manifest.IGNORED, {'path': 'file', 'reason': 'reason'}, 'Ignored files'),
)


def data_json(report_uri: Optional[str]) -> Optional[Dict[str, Any]]:
  """The accounting of the ingest report at `report_uri` (None without one): `splits` ({split:
  {class: images}}), `bad_fraction`, `quarantined` ([{path, reason, detail}]), `duplicates`
  ([{path, duplicate_of, reason}]), `ignored` ([{path, reason}]), `patients` (`images`,
  `patients`, `in_train_and_test`, `train_images_in_test`) and the summary's totals."""
  if report_uri is None:
    return None
  summary = manifest.read_summary(report_uri)
  rows = manifest.read_rows(report_uri, [status for _, status, _, _ in _LISTS], _COLUMNS)
  data = {
    'input_base': summary['input_base'],
    'spans': summary['spans'],
    'manifest': FileSystems.join(report_uri, manifest.MANIFEST_FILE),
    'files_found': summary['files_found'],
    'status': summary['status'],
    'splits': {
      split: {name: counts[name] for name in labels.CLASS_NAMES}
      for split, counts in summary['splits'].items()
    },
    'image_files': summary['image_files'],
    'bad_fraction': summary['bad_fraction'],
    'max_bad_fraction': summary['max_bad_fraction'],
    'reasons': summary['reasons'],
    'unknown_class_folders': summary['unknown_class_folders'],
    'patients': summary.get('patients'),  # None in a report written before patient hashes
  }
  for key, status, fields, _ in _LISTS:
    data[key] = [{field: row[field] for field in fields} for row in rows if row['status'] == status]
  return data


def _file_list(data: Dict[str, Any], key: str, status: str, fields: Dict[str, str]) -> List[str]:
  files = data[key]
  if not files:
    return ['None.', '']
  reasons = data['reasons'].get(status, {})
  lines = [
    'By reason: ' + ', '.join(f'{markdown_text.escape(r)} {n}' for r, n in reasons.items()) + '.',
    '',
  ]
  lines += report_format.table(
    list(fields.values()),
    [[markdown_text.escape(f[field]) for field in fields] for f in files[:MAX_LISTED]],
  )
  if len(files) > MAX_LISTED:
    lines += [
      '',
      f'The first {MAX_LISTED} of {len(files)} by path; `cxr report --json` (`data.{key}`) and '
      f'the manifest list them all.',
    ]
  return lines + ['']


def data_section(data: Optional[Dict[str, Any]]) -> List[str]:
  """`data_json`'s accounting as Markdown: the counts, then the quarantined, duplicate and ignored
  files (at most MAX_LISTED of each)."""
  lines = ['## Data', '']
  if data is None:
    return lines + ['No ingestion report recorded for the examples of this run.', '']
  status = data['status']
  spans = f' (spans {", ".join(map(str, data["spans"]))})' if data['spans'] else ''
  lines += [
    f'Ingested from {markdown_text.escape(data["input_base"])}{spans}: {data["files_found"]} '
    f'files found = {status[manifest.INGESTED]} ingested + {status[manifest.QUARANTINED]} '
    f'quarantined + {status[manifest.DUPLICATE]} duplicates + {status[manifest.IGNORED]} ignored. '
    f'File paths are relative to that folder; every file is in the manifest, '
    f'{markdown_text.escape(data["manifest"])}.',
    '',
    'Images ingested per split and class:',
    '',
  ]
  lines += report_format.table(
    ['split'] + list(labels.CLASS_NAMES) + ['total'],
    [
      [split] + [f'{n}' for n in counts.values()] + [f'{sum(counts.values())}']
      for split, counts in data['splits'].items()
    ],
  )
  lines += [
    '',
    f'Bad fraction: {status[manifest.QUARANTINED]} of {data["image_files"]} image files '
    f'quarantined ({data["bad_fraction"]:.1%}; ingestion refuses more than '
    f'{data["max_bad_fraction"]:.1%}).',
    '',
  ]
  known = data['patients']
  if known and known['images']:
    lines += [
      f'Patients: {known["images"]} images of {known["patients"]} patients (DICOM PatientID or the '
      f'metadata CSV, kept only as a salted hash), each patient in one split; '
      f'{known["in_train_and_test"]} patients with images in both Train/ and Test/ are kept in '
      f'test, with their {known["train_images_in_test"]} Train/ images.',
      '',
    ]
  if data['unknown_class_folders']:
    lines += [
      'Folders naming no known class, skipped: '
      + ', '.join(map(markdown_text.escape, data['unknown_class_folders']))
      + '.',
      '',
    ]
  for key, status_name, fields, title in _LISTS:
    lines += [f'### {title} ({len(data[key])})', ''] + _file_list(data, key, status_name, fields)
  return lines
