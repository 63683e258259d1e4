"""Sources: source folders, the metadata CSV, class x source association and confounded tests."""

import collections
import hashlib
import hmac
import json
import logging
import os
import pathlib

import numpy as np
import pandas as pd
from PIL import Image
import pyarrow.parquet as pq
import pytest
from scipy.stats import contingency
import tensorflow as tf

from components import features
from components import labels
from components.ingestion import confounding
from components.ingestion import discovery
from components.ingestion import image_check
from components.ingestion import ingest
from components.ingestion import IngestOptions
from components.ingestion import splitting
from components.ingestion.confounding import ConfoundedSourcesError
from components.ingestion.file_table import FileTable
from components.ingestion.inspection import Inspected

COVID, NORMAL, VIRAL = labels.CLASS_NAMES
SPLITS = ('train', 'eval', 'test')


def _png(path, seed: int) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  pixels = np.random.default_rng(seed).integers(0, 256, (24, 24), dtype=np.uint8)
  Image.fromarray(pixels).save(path)


def _images(folder, classes, per_class, seed):
  """per_class PNGs (distinct contents) in folder/<class>/ for each class; returns their count."""
  for name in classes:
    for i in range(per_class):
      _png(
        os.path.join(folder, name, f'{name[:5]}_{i}.png'),
        seed + 100 * labels.CLASS_NAMES.index(name) + i,
      )
  return len(classes) * per_class


def _ingest(root, out, **options):
  result = ingest(str(root), str(out / 'examples'), str(out / 'report'), IngestOptions(**options))
  return result, pq.read_table(result.manifest_uri).to_pandas()


def _example_sources(out, split):
  """{path: source} of the tf.Examples written for a split."""
  files = tf.io.gfile.glob(str(out / 'examples' / f'Split-{split}' / 'data_tfrecord-*'))
  found = {}
  for record in tf.data.TFRecordDataset(files):
    feature = tf.train.Example.FromString(record.numpy()).features.feature
    path, source = (
      feature[key].bytes_list.value[0].decode() for key in (features.PATH_KEY, features.SOURCE_KEY)
    )
    found[path] = source
  return found


def _crosstab(manifest, split):
  """The class x source table of a split's ingested rows (pandas), as {source: {class: n}}."""
  rows = manifest[(manifest.status == 'ingested') & (manifest.split == split)]
  table = pd.crosstab(rows.source, rows.label_name).reindex(
    columns=labels.CLASS_NAMES, fill_value=0
  )
  return {source: {c: int(n) for c, n in row.items()} for source, row in table.iterrows()}


def _site_root(root):
  """ROOT/<site>/<class>/: two sites holding every class; returns the number of images and the
  folder holding the sites."""
  sites = (('siteA', 0), ('siteB', 5000))
  return sum(_images(root / site, labels.CLASS_NAMES, 10, seed) for site, seed in sites), root


def _site_train_test(root):
  n = 0
  for split, per_class in (('Train', 6), ('Test', 4)):
    for site, seed in (('siteA', 0), ('siteB', 5000)):
      n += _images(root / split / site, labels.CLASS_NAMES, per_class, seed + 10 * per_class)
  return n, root / 'Train'


def _site_span(root):
  _images(root / 'span-1' / 'Train', labels.CLASS_NAMES, 3, 90000)  # not selected: 'latest' is 2
  return _site_root(root / 'span-2')


SITE_LAYOUTS = {'root': _site_root, 'train_test': _site_train_test, 'span': _site_span}


@pytest.mark.parametrize('layout', SITE_LAYOUTS)
def test_source_folders_name_each_file_source(layout, tmp_path):
  root = tmp_path / 'data'
  images, sites = SITE_LAYOUTS[layout](root)
  (sites / 'README.txt').write_text('beside the source folders')
  readme = str((sites / 'README.txt').relative_to(root))
  result, manifest = _ingest(root, tmp_path / 'out')

  ingested = manifest[manifest.status == 'ingested']
  assert len(ingested) == images == sum(result.summary['splits'][s]['total'] for s in SPLITS)
  site = ingested.path.str.split('/').str[-3]  # <site>/<class>/<file>
  assert (ingested.source == site).all() and set(site) == {'siteA', 'siteB'}
  assert manifest.set_index('path').loc[readme, 'reason'] == 'outside_class_folders'
  if layout == 'train_test':
    assert (
      result.summary['splits']['test']['total'] == (ingested.path.str[:5] == 'Test/').sum() == 24
    )
  for split in SPLITS:
    assert _example_sources(tmp_path / 'out', split) == dict(
      ingested[ingested.split == split][['path', 'source']].values
    )
    entry = result.summary['confounding'][split]
    assert entry['table'] == _crosstab(manifest, split)
    # Both sites hold as many images of each class: the splits are stratified by source too.
    assert entry['table']['siteA'] == entry['table']['siteB']
    observed = pd.DataFrame(entry['table']).T.to_numpy()
    assert entry['cramers_v'] == pytest.approx(contingency.association(observed, method='cramer'))
  assert result.summary['confounding']['confounded_classes'] == []


def test_a_folder_named_like_a_class_is_a_class_and_mixed_levels_are_refused(tmp_path):
  _images(tmp_path / 'nested' / 'COVID', (NORMAL,), 1, 0)  # COVID/NORMAL/: a class folder
  _images(tmp_path / 'nested', (VIRAL,), 1, 0)
  entries = list(discovery.discover(str(tmp_path / 'nested')).candidates())
  assert {(e.path, labels.CLASS_NAMES[e.label], e.source) for e in entries} == {
    ('COVID/NORMAL/NORMA_0.png', COVID, 'nested'),
    ('VIRAL PNEUMONIA/VIRAL_0.png', VIRAL, 'nested'),
  }
  _images(tmp_path / 'mixed', (COVID,), 1, 0)
  _images(tmp_path / 'mixed' / 'siteB', (NORMAL,), 1, 0)
  with pytest.raises(ValueError) as error:
    discovery.discover(str(tmp_path / 'mixed'))
  assert str(error.value) == (
    f"{tmp_path / 'mixed'} mixes class folders ['COVID'] and source folders ['siteB'] (folders "
    'holding class folders); put every class folder inside a source folder, or none'
  )
  _images(tmp_path / 'other' / 'siteA', labels.CLASS_NAMES, 1, 0)
  _images(tmp_path / 'other' / 'siteB', labels.CLASS_NAMES, 1, 0)
  _png(str(tmp_path / 'other' / 'scans' / 'x.png'), 0)  # holds no class folder: not a source
  with pytest.raises(ValueError, match=r"Unknown class folder\(s\) \['scans'\]"):
    discovery.discover(str(tmp_path / 'other'))


def _splits_by_source(files):
  """{source: Counter of splits} after splitting.assign of (path, label, source) single root
  files."""
  info = image_check.ImageInfo('PNG', 'PNG', 8, 8, 1)
  with FileTable() as table:
    table.add_inspected(
      Inspected(
        discovery.FileEntry(path, '/' + path, 1, source, label, 'any'),
        hashlib.sha256(path.encode()).hexdigest(),
        info,
      )
      for path, label, source in files
    )
    splitting.assign(table, IngestOptions())
    found = collections.defaultdict(collections.Counter)
    for row in table.rows():
      found[row['source']][row['split']] += 1
    return found


def test_splits_are_stratified_by_source_and_small_sources_are_pooled():
  # Per class: 10 images from 'big' (a stratum: 8/1/1), 10 from ten sources of 1 image (pooled,
  # 8/1/1 together), 5 from 'small' (a stratum of its own: 3/1/1, every split gets one).
  files = [
    (f'{c}/{source}_{i}.png', label, source)
    for label, c in enumerate(labels.CLASS_NAMES)
    for source, n in [('big', 10), ('small', 5)] + [(f'one{j}', 1) for j in range(10)]
    for i in range(n)
  ]
  found = _splits_by_source(files)
  assert found['big'] == {'train': 24, 'eval': 3, 'test': 3}
  assert found['small'] == {'train': 9, 'eval': 3, 'test': 3}
  pooled = sum((found[f'one{j}'] for j in range(10)), collections.Counter())
  assert pooled == {'train': 24, 'eval': 3, 'test': 3}


def _covidx_like(root):
  """Train/: both sites hold every class; Test/: every COVID image from siteA, the others from
  siteB (COVIDx9A's test list)."""
  _images(root / 'Train' / 'siteA', labels.CLASS_NAMES, 4, 0)
  _images(root / 'Train' / 'siteB', labels.CLASS_NAMES, 4, 1000)
  _images(root / 'Test' / 'siteA', (COVID,), 3, 2000)
  _images(root / 'Test' / 'siteB', (NORMAL, VIRAL), 3, 3000)


def test_a_test_split_confounded_with_its_sources_is_refused_unless_allowed(tmp_path, caplog):
  _covidx_like(tmp_path / 'data')
  with pytest.raises(ConfoundedSourcesError) as error:
    _ingest(tmp_path / 'data', tmp_path / 'refused')
  assert str(error.value) == (
    'Test classes confounded with their source: COVID only from siteA (3 images); these sources '
    'hold no test image of another class, so the test result may measure the source, not the '
    'class. Mix sources within each class of the test split, or pass --allow-confounded-sources '
    '(allow_confounded_sources=True in the API) to go on with this warning in the report.'
  )
  assert not [f for _, _, files in os.walk(tmp_path / 'refused' / 'examples') for f in files]
  with open(tmp_path / 'refused' / 'report' / 'summary.json') as f:
    refused = json.load(f)['confounding']
  assert (refused['confounded_classes'], refused['allowed']) == (['COVID'], False)
  assert refused['test']['table'] == {
    'siteA': {COVID: 3, NORMAL: 0, VIRAL: 0},
    'siteB': {COVID: 0, NORMAL: 3, VIRAL: 3},
  }
  assert refused['test']['cramers_v'] == pytest.approx(1.0)

  result, manifest = _ingest(tmp_path / 'data', tmp_path / 'allowed', allow_confounded_sources=True)
  entry = result.summary['confounding']
  assert (entry['confounded_classes'], entry['allowed']) == (['COVID'], True)
  assert entry['warning'] == str(error.value).split('. Mix')[0]
  assert f'{entry["warning"]} (allowed by allow_confounded_sources)' in [
    r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
  ]
  assert set(_example_sources(tmp_path / 'allowed', 'test').values()) == {'siteA', 'siteB'}
  for split in SPLITS:
    observed = pd.DataFrame(_crosstab(manifest, split)).T.to_numpy()
    assert entry[split]['cramers_v'] == pytest.approx(
      contingency.association(observed, method='cramer')
    )


def test_cramers_v_on_hand_checkable_tables():
  perfect = {'A': {COVID: 5}, 'B': {NORMAL: 3}, 'C': {VIRAL: 4}}
  assert confounding.cramers_v(perfect) == (pytest.approx(1.0), None)
  assert confounding.confounded_classes(perfect) == {
    COVID: {'A': 5},
    NORMAL: {'B': 3},
    VIRAL: {'C': 4},
  }
  independent = {'A': {COVID: 2, NORMAL: 4}, 'B': {COVID: 3, NORMAL: 6}}
  assert confounding.cramers_v(independent) == (pytest.approx(0.0), None)
  assert confounding.confounded_classes(independent) == {}
  assert confounding.cramers_v({'A': {COVID: 2, NORMAL: 1}}) == (
    None,
    'one source: the association needs two or more sources',
  )
  assert confounding.cramers_v({'A': {COVID: 2}, 'B': {COVID: 1, NORMAL: 0}}) == (
    None,
    'one class: the association needs two or more classes',
  )
  # Two of three classes share siteB: only COVID is confounded.
  assert confounding.confounded_classes({'A': {COVID: 3}, 'B': {NORMAL: 3, VIRAL: 1}}) == {
    COVID: {'A': 3}
  }
  assert confounding.confounded_classes({'A': {COVID: 3}}) == {}  # no other class to tell apart


def _train_test(root):
  _images(root / 'Train', labels.CLASS_NAMES, 6, 0)
  _images(root / 'Test', labels.CLASS_NAMES, 3, 1000)


def test_metadata_csv_sets_sources_and_counts_rows_naming_no_file(tmp_path):
  root = tmp_path / 'data'
  _train_test(root)  # COVID_0.png is in Train/COVID/ and Test/COVID/
  unknown = [f'missing_{i}.png' for i in range(7)]
  csv_path = tmp_path / 'meta.csv'
  csv_path.write_text(
    'File Name,FORMAT,Source\n'
    'Train/COVID/COVID_1.png,PNG,hospital-1\n'
    'NORMA_4,PNG,hospital-2\n'  # a bare name without its extension, unique
    'viral_5.PNG,PNG,hospital-3\n'  # a bare name, case ignored
    'Test/COVID/COVID_0.png,PNG,hospital-4\n'
    'COVID_0,PNG,hospital-5\n'  # two files have this name: ambiguous
    'Test/NORMAL/NORMA_0.png,PNG,\n'  # no source: skipped
    + ''.join(f'{name},PNG,hospital-9\n' for name in unknown)
  )
  result, manifest = _ingest(root, tmp_path / 'out', metadata_csv=str(csv_path))

  sources = dict(manifest[['path', 'source']].values)
  listed = {
    'Train/COVID/COVID_1.png': 'hospital-1',
    'Train/NORMAL/NORMA_4.png': 'hospital-2',
    'Train/VIRAL PNEUMONIA/VIRAL_5.png': 'hospital-3',
    'Test/COVID/COVID_0.png': 'hospital-4',
  }
  assert {p: s for p, s in sources.items() if s.startswith('hospital')} == listed
  assert (
    sources['Train/COVID/COVID_0.png'] == 'Train' and sources['Test/NORMAL/NORMA_0.png'] == 'Test'
  )
  assert result.summary['metadata_csv'] == {
    'path': str(csv_path),
    'rows': 5 + len(unknown),
    'files_listed': 4,
    'files_not_listed': 27 - 4,
    'unknown_rows': 7,
    'unknown_examples': unknown[:5],
    'ambiguous_rows': 1,
    'ambiguous_examples': ['COVID_0'],
  }
  written = {}
  for split in SPLITS:
    written.update(_example_sources(tmp_path / 'out', split))
  assert {p: written[p] for p in listed} == listed


def test_metadata_csv_feeds_patients_and_subgroups(tmp_path):
  root, out = tmp_path / 'data', tmp_path / 'out'
  _train_test(root)
  patient = 'PAT-CSV-0042'  # two Train/ COVID images and one Test/ COVID image
  csv_path = tmp_path / 'meta.csv'
  csv_path.write_text(
    'path,view,Sex,AGE,manufacturer,Patient ID\n'
    f'Train/COVID/COVID_1.png,PA,female,45,Acme  Imaging,{patient}\n'
    f'Train/COVID/COVID_2.png,ap,M,006M,,{patient}\n'
    f'Test/COVID/COVID_2.png,PA,F,93,Acme Imaging,{patient}\n'
    'Train/NORMAL/NORMA_1.png,,x,abc,,\n'  # not understood: unknown, not an error
  )
  salt_file = out / 'patient_salt'
  result, manifest = _ingest(
    root, out, metadata_csv=str(csv_path), patient_salt_file=str(salt_file)
  )
  rows = manifest.set_index('path')
  columns = ['split', 'patient_hash', 'view_position', 'sex', 'age_band', 'manufacturer']
  digest = hmac.new(salt_file.read_bytes(), patient.encode(), 'sha256').hexdigest()
  assert rows.loc[
    ['Train/COVID/COVID_1.png', 'Train/COVID/COVID_2.png', 'Test/COVID/COVID_2.png'], columns
  ].values.tolist() == [
    ['test', digest, 'PA', 'F', '40-49', 'Acme Imaging'],
    ['test', digest, 'AP', 'M', '0-9', 'unknown'],
    ['test', digest, 'PA', 'F', '90+', 'Acme Imaging'],
  ]
  unknown = ['', 'unknown', 'unknown', 'unknown', 'unknown']
  assert rows.loc['Train/NORMAL/NORMA_1.png', columns[1:]].tolist() == unknown
  assert rows.loc['Train/NORMAL/NORMA_2.png', columns[1:]].tolist() == unknown
  assert result.summary['patients'] == {
    'images': 3,
    'patients': 1,
    'in_train_and_test': 1,
    'train_images_in_test': 2,
  }
  assert result.summary['metadata_csv']['files_listed'] == 4
  examples = {}
  for record in tf.data.TFRecordDataset(tf.io.gfile.glob(str(out / 'examples' / 'Split-*' / '*'))):
    feature = tf.train.Example.FromString(record.numpy()).features.feature
    examples[feature[features.PATH_KEY].bytes_list.value[0].decode()] = feature
  listed = examples['Train/COVID/COVID_2.png']
  assert [
    listed[k].bytes_list.value[0] for k in (features.PATIENT_HASH_KEY,) + features.SUBGROUP_KEYS
  ] == [
    digest.encode(),
    b'AP',
    b'M',
    b'0-9',
    b'unknown',
  ]
  assert features.PATIENT_HASH_KEY not in examples['Train/NORMAL/NORMA_2.png']
  for folder, _, names in os.walk(out):
    for name in names:
      assert patient.encode() not in (pathlib.Path(folder) / name).read_bytes(), name


def test_unusable_metadata_csv_is_one_clear_line(tmp_path):
  _train_test(tmp_path / 'data')
  with pytest.raises(ValueError) as error:
    _ingest(tmp_path / 'data', tmp_path / 'out', metadata_csv=str(tmp_path / 'none.csv'))
  assert str(error.value) == (
    f"metadata_csv '{tmp_path / 'none.csv'}' does not exist; pass the path of an existing CSV file"
  )
  (tmp_path / 'bad.csv').write_text('name,origin\na.png,x\n')
  with pytest.raises(ValueError) as error:
    _ingest(tmp_path / 'data', tmp_path / 'out', metadata_csv=str(tmp_path / 'bad.csv'))
  assert str(error.value) == (
    f"metadata_csv '{tmp_path / 'bad.csv'}' needs a file column (path or file or filename) and at "
    'least one of the columns source, view, sex, age, manufacturer, patient_id, found columns '
    "['name', 'origin']; rename its header"
  )
