"""The report's data accounting of a real ingestion (pipeline/report_data.py), and dataset strings
in report.md (markdown_text.escape) as two Markdown renderers show them: Python-Markdown (which
report.html uses) and markdown-it-py (CommonMark with GitHub's tables, as GitHub shows it)."""

import os
import shutil

import markdown
from markdown_it import MarkdownIt
import numpy as np
from PIL import Image
import pytest

from components import labels
from components import markdown_text
from components.ingestion import discovery
from components.ingestion import image_check
from components.ingestion import ingest
from components.ingestion import IngestOptions
from components.ingestion import splitting
import html_page
from pipeline import report_data

INJECTED = '<img src=x onerror=alert(1)>'  # source folder names
PIPED = 'site|2'
PER_CLASS = 5  # images per class and source: 3 train, 1 eval, 1 test at ratios 0.6/0.2/0.2
EMPTY = [f'{INJECTED}/COVID/empty{i:02}.png' for i in range(report_data.MAX_LISTED + 1)]
TRUNCATED = f'{PIPED}/NORMAL/cut|short.png'
COPY = (f'{INJECTED}/NORMAL/z copy.png', f'{INJECTED}/NORMAL/NORMAL_0.png')  # (copy, original)
NOTES = f'{PIPED}/COVID/notes.txt'


def _png(path, seed):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  pixels = np.random.default_rng(seed).integers(0, 256, (24, 24), dtype=np.uint8)
  Image.fromarray(pixels).save(path)


@pytest.fixture(scope='module')
def report_uri(tmp_path_factory):
  """The ingest report of two source folders, INJECTED and PIPED, with PER_CLASS images per
  class each, the empty files EMPTY, the cut PNG TRUNCATED, the copy COPY and the file NOTES."""
  root = tmp_path_factory.mktemp('data')
  for s, source in enumerate((INJECTED, PIPED)):
    for c, name in enumerate(labels.CLASS_NAMES):
      for i in range(PER_CLASS):
        _png(str(root / source / name / f'{name}_{i}.png'), 1000 * s + 100 * c + i)
  for path in EMPTY:
    (root / path).write_bytes(b'')
  (root / TRUNCATED).write_bytes((root / PIPED / 'NORMAL' / 'NORMAL_0.png').read_bytes()[:60])
  shutil.copy(root / COPY[1], root / COPY[0])
  (root / NOTES).write_text('not an image')
  out = tmp_path_factory.mktemp('ingested')
  ingest(
    str(root),
    str(out / 'examples'),
    str(out / 'report'),
    IngestOptions(split_ratios=(0.6, 0.2, 0.2), max_bad_fraction=1.0),
  )
  return str(out / 'report')


def test_data_json_accounts_for_every_file(report_uri):
  data = report_data.data_json(report_uri)

  per_split = {'train': 3, 'eval': 1, 'test': 1}
  assert data['splits'] == {
    split: dict.fromkeys(labels.CLASS_NAMES, 2 * n) for split, n in per_split.items()
  }
  quarantined = sorted(EMPTY + [TRUNCATED])
  assert [f['path'] for f in data['quarantined']] == quarantined  # all, in the manifest's order
  assert {f['path']: f['reason'] for f in data['quarantined']} == {
    **dict.fromkeys(EMPTY, image_check.EMPTY_FILE),
    TRUNCATED: image_check.TRUNCATED,
  }
  assert data['duplicates'] == [
    {'path': COPY[0], 'duplicate_of': COPY[1], 'reason': splitting.DUPLICATE_WITHIN_SPLIT}
  ]
  assert data['ignored'] == [{'path': NOTES, 'reason': discovery.NOT_AN_IMAGE_FILE}]
  images = 2 * PER_CLASS * len(labels.CLASS_NAMES)
  assert data['status'] == {
    'ingested': images,
    'quarantined': len(quarantined),
    'duplicate': 1,
    'ignored': 1,
  }
  assert data['bad_fraction'] == pytest.approx(len(quarantined) / (images + len(quarantined) + 1))
  assert report_data.data_json(None) is None


def _render(text):
  """(Python-Markdown's page, markdown-it-py's page) of Markdown `text`, raw HTML allowed as in
  both renderers' defaults for trusted text."""
  return (
    html_page.Page(markdown.markdown(text, extensions=['tables'])),
    html_page.Page(MarkdownIt('commonmark', {'html': True}).enable('table').render(text)),
  )


def test_data_section_shows_each_file_as_text_in_bounded_tables(report_uri):
  data = report_data.data_json(report_uri)
  text = '\n'.join(report_data.data_section(data))
  assert f'The first {report_data.MAX_LISTED} of {len(EMPTY) + 1} by path;' in text

  for page in _render(text):
    assert 'img' not in page.tags and 'script' not in page.tags
    assert ['split', *labels.CLASS_NAMES, 'total'] in page.rows
    assert ['test', '2', '2', '2', '6'] in page.rows and ['train', '6', '6', '6', '18'] in page.rows
    quarantined = [row for row in page.rows if row[1] in ('empty_file', 'truncated')]
    assert [row[0] for row in quarantined] == sorted(EMPTY + [TRUNCATED])[: report_data.MAX_LISTED]
    assert [*COPY, 'duplicate_within_split'] in page.rows
    assert [NOTES, 'not_an_image_file'] in page.rows
    assert all(len(row) == len(page.rows[0]) for row in page.rows[:4])


NASTY = [
  INJECTED,
  'a|b',
  '`code` ``x``',
  '*em* **strong** _u_ __b__ a*b*c',
  '[link](javascript:alert(1)) ![i](x.png)',
  '# heading',
  '&amp; &lt; & <',
  'back\\slash\\|',
  '~~struck~~',
  'covid_001_a.png',
  '<script>alert(1)</script>',
]


@pytest.mark.parametrize('text', NASTY)
def test_escaped_text_shows_as_itself_in_one_table_cell(text):
  table = f'| file | n |\n|---|---|\n| {markdown_text.escape(text)} | 1 |'
  for page in _render(table):
    assert page.rows == [['file', 'n'], [text, '1']]
    assert set(page.tags) <= {'table', 'thead', 'tbody', 'tr', 'th', 'td'}


def test_escaped_line_breaks_become_spaces_and_file_names_stay_readable():
  cell = markdown_text.escape('two\r\nlines')
  for page in _render(f'| a |\n|---|\n| {cell} |'):
    assert page.rows == [['a'], ['two lines']]
  assert markdown_text.escape('COVID/covid_001.png') == 'COVID/covid_001.png'
