"""Ingestion: layouts, formats, bad input, duplicates, groups, deterministic splits, spans,
report."""

import dataclasses
import hashlib
import io
import os
import random
import shutil
import struct
import zlib

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
import numpy as np
from PIL import Image
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from components import demo_data
from components import features
from components import labels
from components.ingestion import beam_pipeline
from components.ingestion import discovery
from components.ingestion import image_check
from components.ingestion import ingest
from components.ingestion import IngestOptions
from components.ingestion import records
from components.ingestion import splitting
from components.ingestion.file_table import FileTable
from components.ingestion.file_table import IGNORED
from components.ingestion.inspection import inspect_file
from components.ingestion.inspection import Inspected


def _image(seed: int, size=(40, 36), mode='L') -> Image.Image:
  rng = np.random.default_rng(seed)
  pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
  return Image.fromarray(pixels, 'RGB').convert(mode)


def _write(path, image: Image.Image = None, data: bytes = None, fmt='PNG'):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  if data is None:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    data = buffer.getvalue()
  with open(path, 'wb') as f:
    f.write(data)
  return data


def _class_folders(root, per_class, seed=0, names=labels.CLASS_NAMES, prefix='img'):
  for label, name in enumerate(names):
    for i in range(per_class):
      _write(
        os.path.join(root, name, f'{prefix}{i}.png'), _image(seed * 100_000 + label * 1000 + i)
      )


def _run(root, tmp_path, name='out', **options):
  out = tmp_path / name
  result = ingest(str(root), str(out / 'examples'), str(out / 'report'), IngestOptions(**options))
  manifest = pq.read_table(result.manifest_uri).to_pylist()
  return result, {row['path']: row for row in manifest}, out


def _records(out, split):
  files = tf.io.gfile.glob(str(out / 'examples' / f'Split-{split}' / 'data_tfrecord-*'))
  assert files, f'no files for split {split}'
  return [r.numpy() for r in tf.data.TFRecordDataset(files)]


def _examples(out, split):
  return [tf.train.Example.FromString(r) for r in _records(out, split)]


def _value(example, key):
  feature = example.features.feature[key]
  return feature.int64_list.value[0] if feature.int64_list.value else feature.bytes_list.value[0]


def _count_files(root):
  return sum(len(files) for _, _, files in os.walk(root))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
  return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))


def _png_claiming(width, height) -> bytes:
  """A tiny PNG whose header claims width x height pixels (a decompression bomb's header)."""
  header = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)
  return (
    b'\x89PNG\r\n\x1a\n'
    + _png_chunk(b'IHDR', header)
    + _png_chunk(b'IDAT', zlib.compress(b'\0' * 64))
    + _png_chunk(b'IEND', b'')
  )


def test_seed_layout_labels_splits_and_example_features(tmp_path):
  root = tmp_path / 'data'
  demo_data.generate(str(root), train_per_class=10, test_per_class=3, min_size=32, max_size=48)
  result, manifest, out = _run(root, tmp_path)

  for split, per_class in {'train': 9, 'eval': 1, 'test': 3}.items():
    assert result.summary['splits'][split] == {
      **dict.fromkeys(labels.CLASS_NAMES, per_class),
      'total': 3 * per_class,
    }
  assert result.summary['files_found'] == _count_files(root) == 39
  assert result.span == 0 and result.split_names == ('train', 'eval', 'test')

  for split in ('train', 'eval', 'test'):
    for example in _examples(out, split):
      path = _value(example, features.PATH_KEY).decode()
      data = (root / path).read_bytes()
      row = manifest[path]
      assert (row['status'], row['split']) == ('ingested', split)
      assert _value(example, features.IMAGE_KEY) == data  # PNG stored as the original bytes
      assert (
        _value(example, features.SHA256_KEY).decode()
        == hashlib.sha256(data).hexdigest()
        == row['sha256']
      )
      folder = path.split('/')
      assert (
        _value(example, features.SOURCE_KEY).decode()
        == folder[0]
        == ('Test' if split == 'test' else 'Train')
      )
      label = _value(example, features.LABEL_KEY)
      assert (
        labels.CLASS_NAMES[label] == folder[1] == _value(example, features.LABEL_NAME_KEY).decode()
      )
      with Image.open(io.BytesIO(data)) as image:
        assert (
          _value(example, features.WIDTH_KEY),
          _value(example, features.HEIGHT_KEY),
        ) == image.size
      assert _value(example, features.CHANNELS_KEY) == 1
      assert _value(example, features.FORMAT_KEY) == b'PNG'


def test_single_root_matches_folder_names_loosely_and_splits_by_ratios(tmp_path):
  root = tmp_path / 'xrays'
  _class_folders(root, 10, names=('covid', 'Normal', 'viral_pneumonia'))
  result, manifest, _ = _run(root, tmp_path)
  for split, per_class in {'train': 8, 'eval': 1, 'test': 1}.items():
    assert result.summary['splits'][split]['total'] == 3 * per_class
    assert set(list(result.summary['splits'][split].values())[:3]) == {per_class}
  assert {
    row['label_name'] for row in manifest.values() if row['path'].startswith('viral_pneumonia/')
  } == {'VIRAL PNEUMONIA'}
  assert {row['source'] for row in manifest.values()} == {'xrays'}


def _kaggle(tmp_path):
  """COVID-19_Radiography_Dataset as unzipped: classes with images/ and masks/, metadata, an
  extra class."""
  base = tmp_path / 'kaggle'
  root = base / 'COVID-19_Radiography_Dataset'
  for label, name in enumerate(('COVID', 'Normal', 'Viral Pneumonia', 'Lung_Opacity')):
    for i in range(4):
      _write(str(root / name / 'images' / f'{name}-{i}.png'), _image(label * 100 + i))
      _write(str(root / name / 'masks' / f'{name}-{i}.png'), _image(label * 100 + i + 50))
    (root / f'{name}.metadata.xlsx').write_bytes(b'PK\x03\x04 not really a spreadsheet')
  (root / 'README.md.txt').write_text('COVID-19 Radiography Database')
  return base


def test_kaggle_layout_stops_on_unknown_class_unless_ignored(tmp_path):
  base = _kaggle(tmp_path)
  with pytest.raises(
    ValueError,
    match=r"Unknown class folder\(s\) \['COVID-19_Radiography_Dataset/Lung_Opacity'\]"
    r'.*pass --ignore-unknown-classes '
    r"\(unknown_classes='ignore' in the API\)",
  ):
    _run(base, tmp_path)

  result, manifest, _ = _run(base, tmp_path, unknown_classes='ignore')
  reasons = {path: (row['status'], row['reason']) for path, row in manifest.items()}
  prefix = 'COVID-19_Radiography_Dataset/'
  assert reasons[prefix + 'Lung_Opacity/images/Lung_Opacity-0.png'] == ('ignored', 'unknown_class')
  assert reasons[prefix + 'COVID/masks/COVID-0.png'] == ('ignored', 'mask')
  assert reasons[prefix + 'COVID.metadata.xlsx'] == ('ignored', 'outside_class_folders')
  assert reasons[prefix + 'Viral Pneumonia/images/Viral Pneumonia-3.png'][0] == 'ingested'
  assert result.summary['status'] == {
    'ingested': 12,
    'quarantined': 0,
    'duplicate': 0,
    'ignored': 25,
  }
  assert result.summary['reasons']['ignored'] == {
    'mask': 12,
    'outside_class_folders': 5,
    'unknown_class': 8,
  }
  assert result.summary['unknown_class_folders'] == [prefix + 'Lung_Opacity']
  assert result.summary['files_found'] == _count_files(base)
  assert {s: result.summary['splits'][s]['total'] for s in ('train', 'eval', 'test')} == {
    'train': 6,
    'eval': 3,
    'test': 3,
  }


def _bad_dataset(root):
  """Seed layout with valid images and one file for every kind of bad input. Returns expected
  reasons."""
  for split_index, (split, count) in enumerate((('Train', 6), ('Test', 2))):
    for label, name in enumerate(labels.CLASS_NAMES):
      for i in range(count):
        _write(
          os.path.join(root, split, name, f'ok{i}.png'),
          _image(split_index * 1000 + label * 100 + i),
        )
  covid = os.path.join(root, 'Train', 'COVID')
  valid = _write(os.path.join(covid, 'source.png'), _image(77, size=(64, 64)))
  jpeg = io.BytesIO()
  _image(78, size=(64, 64)).save(jpeg, format='JPEG')
  idat = valid.index(b'IDAT') + 20
  bad = {
    'empty.png': (b'', 'empty_file'),
    'truncated.png': (valid[: len(valid) // 2], 'truncated'),
    'truncated.jpg': (jpeg.getvalue()[: len(jpeg.getvalue()) // 2], 'truncated'),
    'bad_crc.png': (valid[:idat] + bytes([valid[idat] ^ 0xFF]) + valid[idat + 1 :], 'corrupt'),
    'notes.png': (b'these are my notes, not an image', 'not_an_image'),
    'bomb.png': (_png_claiming(100_000, 100_000), 'too_many_pixels'),
  }
  for name, (data, _) in bad.items():
    _write(os.path.join(covid, name), data=data)
  ignored = {
    '.DS_Store': b'\0\0\0\1Bud1',
    'Thumbs.db': b'\xd0\xcf\x11\xe0',
    '._ok0.png': b'\0\5\26\7',
    'labels.csv': b'file,label\n',
  }
  for name, data in ignored.items():
    _write(os.path.join(covid, name), data=data)
  _write(os.path.join(root, 'README.md'), data=b'# my dataset')
  expected = {f'Train/COVID/{name}': ('quarantined', reason) for name, (_, reason) in bad.items()}
  expected.update({f'Train/COVID/{name}': ('ignored', 'hidden_or_system_file') for name in ignored})
  expected['Train/COVID/labels.csv'] = ('ignored', 'not_an_image_file')
  expected['README.md'] = ('ignored', 'outside_split_folders')
  return expected


def test_bad_input_is_quarantined_with_reasons_and_counts_reconcile(tmp_path):
  root = tmp_path / 'data'
  expected = _bad_dataset(str(root))
  result, manifest, out = _run(root, tmp_path, max_bad_fraction=0.5)

  assert {
    path: (row['status'], row['reason']) for path, row in manifest.items() if path in expected
  } == expected
  assert '10000000000 pixels' in manifest['Train/COVID/bomb.png']['detail']
  summary = result.summary
  assert summary['files_found'] == _count_files(root) == len(manifest)
  assert sum(summary['status'].values()) == summary['files_found']
  assert summary['status'] == {'ingested': 25, 'quarantined': 6, 'duplicate': 0, 'ignored': 5}
  assert summary['reasons']['quarantined'] == {
    'corrupt': 1,
    'empty_file': 1,
    'not_an_image': 1,
    'too_many_pixels': 1,
    'truncated': 2,
  }
  written = sum(len(_examples(out, split)) for split in ('train', 'eval', 'test'))
  assert (
    written == summary['status']['ingested'] == sum(s['total'] for s in summary['splits'].values())
  )


def test_too_many_bad_files_fail_with_counts_and_report_location(tmp_path):
  root = tmp_path / 'data'
  _bad_dataset(str(root))
  out = tmp_path / 'strict'
  with pytest.raises(
    ValueError,
    match=r'6 of 31 image files \(19\.4%\) were quarantined \(corrupt 1, empty_file 1, '
    r'.*more than max_bad_fraction=10\.0%.*manifest\.parquet',
  ):
    ingest(
      str(root), str(out / 'examples'), str(out / 'report'), IngestOptions(max_bad_fraction=0.10)
    )
  rows = pq.read_table(str(out / 'report' / 'manifest.parquet')).to_pylist()
  assert len(rows) == _count_files(root)


def test_file_that_vanished_or_cannot_be_read_is_unreadable(tmp_path):
  entry = discovery.FileEntry(
    path='COVID/gone.png', uri=str(tmp_path / 'gone.png'), size=10, source='x', label=0, role='any'
  )
  item = inspect_file(entry, max_image_pixels=10_000, salt=b'salt')
  assert item.reason == 'unreadable' and 'gone.png' in item.detail


def test_formats_are_recorded_and_transcoded_losslessly(tmp_path):
  root = tmp_path / 'data'
  _class_folders(root, 3, seed=9, names=('NORMAL', 'VIRAL PNEUMONIA'))
  gray16 = Image.fromarray((np.arange(40 * 30).reshape(30, 40) * 50).astype(np.uint16))
  cases = {  # file name: (image, save format, recorded format, stored format, channels)
    'gray8.png': (_image(1), 'PNG', 'PNG', 'PNG', 1),
    'gray16.png': (gray16, 'PNG', 'PNG', 'PNG', 1),
    'rgb.png': (_image(2, mode='RGB'), 'PNG', 'PNG', 'PNG', 3),
    'rgba.png': (_image(3, mode='RGBA'), 'PNG', 'PNG', 'PNG', 4),
    'palette.png': (_image(4, mode='RGB').convert('P'), 'PNG', 'PNG', 'PNG', 3),
    'gray.jpg': (_image(5), 'JPEG', 'JPEG', 'JPEG', 1),
    'rgb.jpeg': (_image(6, mode='RGB'), 'JPEG', 'JPEG', 'JPEG', 3),
    'rgb.bmp': (_image(7, mode='RGB'), 'BMP', 'BMP', 'PNG', 3),
    'gray16.tif': (gray16.transpose(Image.Transpose.FLIP_LEFT_RIGHT), 'TIFF', 'TIFF', 'PNG', 1),
    'cmyk.jpg': (_image(8, mode='CMYK'), 'JPEG', 'JPEG', 'PNG', 3),
  }
  for name, (image, fmt, *_) in cases.items():
    _write(str(root / 'COVID' / name), image, fmt=fmt)
  _, manifest, out = _run(root, tmp_path)

  stored = {}
  for split in ('train', 'eval', 'test'):
    for example in _examples(out, split):
      stored[_value(example, features.PATH_KEY).decode()] = example
  for name, (image, _, fmt, stored_format, channels) in cases.items():
    row = manifest[f'COVID/{name}']
    assert (row['status'], row['format'], row['stored_format'], row['channels']) == (
      'ingested',
      fmt,
      stored_format,
      channels,
    ), name
    assert row['reason'] == ('transcoded_to_png' if fmt != stored_format else '')
    example = stored[f'COVID/{name}']
    assert (
      _value(example, features.FORMAT_KEY).decode(),
      _value(example, features.CHANNELS_KEY),
    ) == (stored_format, channels)
    assert (_value(example, features.WIDTH_KEY), _value(example, features.HEIGHT_KEY)) == image.size
    decoded = tf.io.decode_image(
      _value(example, features.IMAGE_KEY),
      dtype=tf.uint16 if '16' in name else tf.uint8,
      expand_animations=False,
    ).numpy()
    assert decoded.shape == (image.height, image.width, channels), name
    if fmt in ('BMP', 'TIFF'):  # lossless: the stored PNG holds exactly the original pixels
      np.testing.assert_array_equal(
        decoded[..., 0] if channels == 1 else decoded, np.asarray(image)
      )


def _files(folder):
  return {
    os.path.relpath(os.path.join(d, f), folder): open(os.path.join(d, f), 'rb').read()
    for d, _, files in os.walk(folder)
    for f in files
  }


def test_parallel_beam_workers_write_the_same_files_byte_for_byte(tmp_path):
  root = tmp_path / 'data'
  demo_data.generate(str(root), train_per_class=4, test_per_class=2, min_size=32, max_size=40)
  shutil.copy(root / 'Train' / 'COVID' / 'covid_0000.png', root / 'Train' / 'COVID' / 'x_copy.png')
  _, in_process, out = _run(root, tmp_path, 'in_process')
  parallel_out = tmp_path / 'parallel'
  pipeline = beam.Pipeline(
    options=PipelineOptions(
      ['--runner=FnApiRunner', '--direct_running_mode=multi_processing', '--direct_num_workers=2']
    )
  )
  result = ingest(
    str(root),
    str(parallel_out / 'examples'),
    str(parallel_out / 'report'),
    IngestOptions(),
    pipeline,
  )
  assert {r['path']: r for r in pq.read_table(result.manifest_uri).to_pylist()} == in_process
  assert _files(parallel_out / 'examples') == _files(out / 'examples')
  assert (
    len(_records(out, 'train')) + len(_records(out, 'eval')) == 3 * 4
  )  # the copy is a duplicate


def _inspected(path, label, content, role='any', group=''):
  entry = discovery.FileEntry(
    path=path, uri='/' + path, size=1, source='s', label=label, role=role, group=group
  )
  info = image_check.ImageInfo('PNG', 'PNG', 8, 8, 1)
  return Inspected(entry, sha256=hashlib.sha256(content.encode()).hexdigest(), info=info)


def test_duplicates_are_kept_once_and_test_wins_across_splits(tmp_path):
  root = tmp_path / 'data'
  demo_data.generate(str(root), train_per_class=6, test_per_class=2, min_size=32, max_size=40)
  covid = root / 'Train' / 'COVID'
  shutil.copy(covid / 'covid_0000.png', covid / 'x_copy_of_0.png')  # within Train/
  shutil.copy(
    root / 'Test' / 'COVID' / 'covid_0001.png', covid / 'from_test.png'
  )  # Train/ copy of a Test/ image
  shutil.copy(
    covid / 'covid_0002.png', root / 'Train' / 'NORMAL' / 'mislabeled.png'
  )  # same bytes, other class
  result, manifest, _ = _run(root, tmp_path, max_bad_fraction=0.2)

  within = manifest['Train/COVID/x_copy_of_0.png']
  assert (within['status'], within['reason'], within['duplicate_of']) == (
    'duplicate',
    'duplicate_within_split',
    'Train/COVID/covid_0000.png',
  )
  assert manifest['Train/COVID/covid_0000.png']['status'] == 'ingested'
  across = manifest['Train/COVID/from_test.png']
  assert (across['status'], across['reason'], across['duplicate_of']) == (
    'duplicate',
    'duplicate_across_splits',
    'Test/COVID/covid_0001.png',
  )
  assert (
    manifest['Test/COVID/covid_0001.png']['status'],
    manifest['Test/COVID/covid_0001.png']['split'],
  ) == ('ingested', 'test')
  for path in ('Train/COVID/covid_0002.png', 'Train/NORMAL/mislabeled.png'):
    assert (manifest[path]['status'], manifest[path]['reason']) == (
      'quarantined',
      'conflicting_labels',
    )
  assert result.summary['status'] == {
    'ingested': 23,
    'quarantined': 2,
    'duplicate': 2,
    'ignored': 0,
  }
  assert result.summary['files_found'] == _count_files(root)


@dataclasses.dataclass(frozen=True)
class Assignment:
  """The fate the plan gave one candidate."""

  path: str
  status: str  # INGESTED, QUARANTINED or DUPLICATE
  split: str = ''  # for INGESTED
  reason: str = ''
  detail: str = ''
  duplicate_of: str = ''  # for DUPLICATE: the path of the kept copy


def _plan(inspected, options):
  """The fate of every inspected candidate, keyed by path: splitting.assign on a table of just
  these files, read back as the manifest reads it."""
  with FileTable() as table:
    table.add_inspected(inspected)
    splitting.assign(table, options)
    return {
      row['path']: Assignment(
        row['path'],
        row['status'],
        row['split'],
        row['fate_reason'],
        row['fate_detail'],
        row['duplicate_of'],
      )
      for row in table.rows('status != ?', (IGNORED,))
    }


def test_duplicate_content_never_straddles_splits_in_a_single_root():
  items = [_inspected(f'COVID/{i}.png', 0, f'c{i}') for i in range(20)]
  items += [_inspected(f'COVID/copy{i}.png', 0, f'c{i}') for i in range(20)]
  fates = _plan(items, IngestOptions())
  for i in range(20):
    original, copy = fates[f'COVID/{i}.png'], fates[f'COVID/copy{i}.png']
    assert {original.status, copy.status} == {'ingested', 'duplicate'}
    assert 'within_split' in (original.reason + copy.reason)


def test_a_group_that_reaches_test_goes_to_test_whole():
  items = [
    _inspected(f'Train/COVID/person{p}_{k}.png', 0, f'{p}-{k}', role='train', group=f'person{p}')
    for p in range(20)
    for k in range(2)
  ]
  items.append(
    _inspected('Test/COVID/person3_9.png', 0, 'test image', role='test', group='person3')
  )
  fates = _plan(items, IngestOptions())
  assert {fates[f'Train/COVID/person3_{k}.png'].split for k in range(2)} == {'test'}
  assert {f.split for path, f in fates.items() if 'person3_' not in path} == {'train', 'eval'}


def test_groups_linked_through_shared_content_form_one_component():
  # Chain c: group c{c}p{k} holds content k-1 and k, so content links group k-1 to group k: the
  # plan has to follow every link of the chain (7 groups) to keep it in one split.
  chains = [
    [
      _inspected(f'COVID/c{c}_p{k}_{j}.png', 0, f'c{c}-{k - 1 + j}', group=f'c{c}p{k}')
      for k in range(7)
      for j in (0, 1)
      if 0 <= k - 1 + j < 6
    ]
    for c in range(12)
  ]
  singles = [_inspected(f'COVID/single{i}.png', 0, f'single{i}') for i in range(40)]
  fates = _plan([item for chain in chains for item in chain] + singles, IngestOptions())
  for chain in chains:
    kept = [fates[item.entry.path] for item in chain if fates[item.entry.path].status == 'ingested']
    copies = [
      fates[item.entry.path] for item in chain if fates[item.entry.path].status == 'duplicate'
    ]
    assert len(kept) == 6 and len(copies) == 6  # one kept file per content
    assert len({f.split for f in kept}) == 1
    assert {fates[c.duplicate_of].split for c in copies} == {kept[0].split}
  assert {fates[i.entry.path].split for i in singles} == {'train', 'eval', 'test'}


def test_staged_inputs_list_candidates_in_chunks_and_the_other_files_apart(tmp_path):
  root = tmp_path / 'data'
  demo_data.generate(str(root), train_per_class=12, test_per_class=2, min_size=32, max_size=40)
  (root / 'README.md').write_text('notes')
  found = discovery.discover(str(root))
  staged = beam_pipeline.stage_inputs(found, str(tmp_path / 'work'))
  assert (staged.candidates, staged.ignored_count, staged.span) == (42, 1, 0)
  chunks = [
    [discovery.FileEntry(*row) for row in records.read(uri)] for uri in staged.candidate_chunks
  ]
  per_chunk = beam_pipeline.CANDIDATES_PER_CHUNK
  assert [len(chunk) for chunk in chunks] == [per_chunk, 42 - per_chunk]
  by_path = lambda entries: sorted(entries, key=lambda e: e.path)
  assert by_path(e for chunk in chunks for e in chunk) == by_path(found.candidates())
  assert [discovery.FileEntry(*row).ignored_reason for row in records.read(staged.ignored)] == [
    'outside_split_folders'
  ]


def test_dicom_candidates_weigh_more_in_chunks(tmp_path):
  """A DICOM file, by its extension or its magic, counts as DICOM_CHUNK_WEIGHT candidates: chunks
  of 4 where PNGs make chunks of 32, so a few files still spread over the workers."""
  root = tmp_path / 'data'
  for name in labels.CLASS_NAMES:
    (root / name).mkdir(parents=True)
    for i in range(6):
      (root / name / f'{i}.dcm').write_bytes(b'')  # staging reads no content but the magic
    (root / name / '1.2.840.1').write_bytes(bytes(128) + b'DICM')
  staged = beam_pipeline.stage_inputs(discovery.discover(str(root)), str(tmp_path / 'work'))
  assert beam_pipeline.CANDIDATES_PER_CHUNK // beam_pipeline.DICOM_CHUNK_WEIGHT == 4
  assert [len(list(records.read(uri))) for uri in staged.candidate_chunks] == [4, 4, 4, 4, 4, 1]


def _without_group(item):
  return dataclasses.replace(item, entry=dataclasses.replace(item.entry, group=''))


def test_group_regex_keeps_each_group_in_one_split():
  items = [
    _inspected(f'{name}/person{p}_{k}.png', label, f'{label}-{p}-{k}', group=f'person{p}')
    for label, name in enumerate(labels.CLASS_NAMES)
    for p in range(label * 100, label * 100 + 30)
    for k in range(3)
  ]
  ungrouped = _plan([_without_group(i) for i in items], IngestOptions())
  grouped = _plan(items, IngestOptions(group_regex=r'(person\d+)_'))

  def splits_per_group(fates):
    seen = {}
    for item in items:
      seen.setdefault(item.entry.group, set()).add(fates[item.entry.path].split)
    return seen

  assert all(len(s) == 1 for s in splits_per_group(grouped).values())
  assert any(
    len(s) > 1 for s in splits_per_group(ungrouped).values()
  )  # the rule is what keeps them together
  sizes = {s: sum(f.split == s for f in grouped.values()) for s in ('train', 'eval', 'test')}
  assert sizes == {'train': 216, 'eval': 27, 'test': 27}  # 24/3/3 groups of 3 per class: 80/10/10


def test_split_assignment_is_deterministic_stratified_and_order_independent():
  items = [
    _inspected(f'{name}/{i}.png', label, f'{label}/{i}')
    for label, name in enumerate(labels.CLASS_NAMES)
    for i in range((label + 1) * 7)
  ]
  reference = _plan(items, IngestOptions())
  for seed in range(3):
    shuffled = items[:]
    random.Random(seed).shuffle(shuffled)
    assert _plan(shuffled, IngestOptions()) == reference
  for label, name in enumerate(labels.CLASS_NAMES):
    n = (label + 1) * 7
    counts = [
      sum(f.split == s and f.path.startswith(name + '/') for f in reference.values())
      for s in ('train', 'eval', 'test')
    ]
    assert counts == splitting.apportion(n, (0.8, 0.1, 0.1))
  reseeded = _plan(items, IngestOptions(split_seed='another-seed'))
  assert reseeded != reference


def test_apportion_is_close_to_ratios_and_gives_every_split_a_file():
  assert splitting.apportion(10, (0.8, 0.1, 0.1)) == [8, 1, 1]
  assert splitting.apportion(3, (0.8, 0.1, 0.1)) == [1, 1, 1]
  assert splitting.apportion(2, (0.8, 0.1, 0.1)) == [2, 0, 0]
  assert splitting.apportion(25, (0.8, 0.1, 0.1)) == [20, 3, 2]
  assert splitting.apportion(7, (0.9, 0.1)) == [6, 1]
  assert splitting.apportion(5, (1.0, 0.0)) == [5, 0]


def test_same_files_elsewhere_give_the_same_splits(tmp_path):
  first = tmp_path / 'first'
  demo_data.generate(str(first), train_per_class=8, test_per_class=2, min_size=32, max_size=40)
  second = tmp_path / 'second' / 'copy'
  shutil.copytree(first, second)
  _, a, _ = _run(first, tmp_path, 'a')
  _, b, _ = _run(second, tmp_path, 'b')
  assert {p: r['split'] for p, r in a.items()} == {p: r['split'] for p, r in b.items()}


def _spans(root):
  demo_data.generate(
    str(root / 'span-1'), train_per_class=4, test_per_class=2, min_size=32, max_size=40, seed=1
  )
  _class_folders(root / 'span-2', 5, seed=2)
  demo_data.generate(
    str(root / 'span-10'), train_per_class=5, test_per_class=2, min_size=32, max_size=40, seed=3
  )


def test_spans_select_latest_all_or_ranges(tmp_path):
  root = tmp_path / 'data'
  _spans(root)
  expectations = {'latest': (10,), 'all': (1, 2, 10), '2': (2,), '1-2': (1, 2), '2-10': (2, 10)}
  for spec, spans in expectations.items():
    found = discovery.discover(str(root), IngestOptions(span=spec))
    assert found.spans == spans and found.span == max(spans)
    assert {e.source for e in found.entries()} == {f'span-{n}' for n in spans}
  with pytest.raises(
    ValueError, match=r"span='7' matches no span folder .*found spans \[1, 2, 10\]"
  ):
    discovery.discover(str(root), IngestOptions(span='7'))

  result, manifest, out = _run(root, tmp_path, span='latest')
  assert result.span == 10 and all(p.startswith('span-10/') for p in manifest)
  assert {_value(e, features.SOURCE_KEY) for e in _examples(out, 'test')} == {b'span-10'}
  result, manifest, _ = _run(root, tmp_path, 'all', span='all')
  assert result.span == 10 and result.summary['status']['ingested'] == 18 + 15 + 21
  assert manifest['span-2/COVID/img0.png']['source'] == 'span-2'


def test_clear_errors_for_unusable_input(tmp_path):
  with pytest.raises(FileNotFoundError, match='does not exist'):
    discovery.discover(str(tmp_path / 'missing'))
  _write(str(tmp_path / 'image.png'), _image(0))
  with pytest.raises(
    ValueError, match=r"Cannot list input_base .*image\.png': Not a directory; it must be"
  ):
    discovery.discover(str(tmp_path / 'image.png'))
  (tmp_path / 'flat').mkdir()
  _write(str(tmp_path / 'flat' / 'a' / 'x.png'), _image(1))
  _write(str(tmp_path / 'flat' / 'b' / 'y.png'), _image(2))
  with pytest.raises(
    ValueError, match=r"No class folders under .*flat.*found folders \['a', 'b'\]"
  ):
    discovery.discover(str(tmp_path / 'flat'))
  only_train = tmp_path / 'only_train'
  _class_folders(only_train / 'Train', 3)
  with pytest.raises(ValueError, match=r'but test lacks COVID, NORMAL, VIRAL PNEUMONIA \(images '):
    _run(only_train, tmp_path)
  with pytest.raises(ValueError, match='split_ratios'):
    IngestOptions(split_ratios=(0.5, 0.2, 0.2))
  with pytest.raises(ValueError, match='span must be'):
    IngestOptions(span='newest')


def test_progress_counts_the_chunks_the_workers_took_up(tmp_path, caplog):
  """Stage 1's record files (one per attempt at a chunk) are the progress the runner sees, each
  chunk counted with its candidates (4 DICOM files, or 32 others) and once however often it was
  tried; a line per call of api._log_progress (every PROGRESS_SECONDS during a run)."""
  from components import progress
  from components.ingestion import api

  chunks = [str(tmp_path / 'candidates' / f'chunk-{i:05d}') for i in range(5)]
  staged = beam_pipeline.StagedInputs(
    str(tmp_path), chunks, [4, 4, 32, 32, 28], 100, '', 0, (), 0, ()
  )
  inspected = tmp_path / 'inspected'
  inspected.mkdir()
  lines = []
  for started, seconds in (((), 5.0), ((0, 1, 1, 2), 10.0), ((3, 4), 20.0)):
    for i in started:  # chunk 1 twice: a retried attempt
      (inspected / beam_pipeline._record_file(chunks[i])).touch()
    with caplog.at_level('INFO', logger=progress.logger.name):
      caplog.clear()
      api._log_progress(staged, seconds)
      lines.append([r.getMessage() for r in caplog.records])
  assert lines == [
    [],  # the workers are starting
    ['  ~40 of 100 image files inspected (4.0 images/s)'],
    ['  100 image files inspected; writing the examples'],
  ]
