"""A split lacking a class stops the ingestion in any layout: one line names it and the counts."""

import json
import os
import shutil

import numpy as np
from PIL import Image
import pytest

from components import labels
from components.ingestion import ingest
from components.ingestion import IngestOptions
from components.ingestion.manifest import MissingClassError

COVID, NORMAL, VIRAL = labels.CLASS_NAMES
SPLITS = ('train', 'eval', 'test')


def _png(path, seed: int) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  pixels = np.random.default_rng(seed).integers(0, 256, (24, 24), dtype=np.uint8)
  Image.fromarray(pixels).save(path)


def _class_folders(root, classes, per_class, seed=0, subfolder=''):
  for name in classes:
    for i in range(per_class):
      path = os.path.join(root, name, subfolder, f'{name[:5]}_{i}.png')
      _png(path, seed + 1000 * labels.class_index(name) + i)


def _single_root(root, classes):
  _class_folders(root, classes, 10)


def _train_test(root, classes):
  _class_folders(os.path.join(root, 'Train'), classes, 10)
  _class_folders(os.path.join(root, 'Test'), classes, 3, seed=100)


def _kaggle(root, classes):
  dataset = os.path.join(root, 'COVID-19_Radiography_Dataset')
  _class_folders(dataset, classes, 10, subfolder='images')
  _class_folders(dataset, classes, 10, seed=500, subfolder='masks')


def _spans(root, classes):
  _train_test(os.path.join(root, 'span-1'), labels.CLASS_NAMES)  # not selected: 'latest' is span-2
  _train_test(os.path.join(root, 'span-2'), classes)


LAYOUTS = {
  'single_root': _single_root,
  'train_test': _train_test,
  'kaggle': _kaggle,
  'span': _spans,
}


def _ingest(root, out, **options):
  return ingest(str(root), str(out / 'examples'), str(out / 'report'), IngestOptions(**options))


def _refusal(root, out, **options):
  """The MissingClassError of ingesting root, checked against the report: the classes each split
  lacks, the counts, nothing written."""
  with pytest.raises(MissingClassError) as error:
    _ingest(root, out, **options)
  message = str(error.value)
  with open(out / 'report' / 'summary.json') as f:
    counts = json.load(f)['splits']
  missing = {split: [c for c in labels.CLASS_NAMES if counts[split][c] == 0] for split in SPLITS}
  assert '\n' not in message
  lacks = '; '.join(f'{s} lacks {", ".join(m)}' for s, m in missing.items() if m)
  per_class = '; '.join(
    f'{s} ' + ', '.join(f'{c} {counts[s][c]}' for c in labels.CLASS_NAMES) for s in SPLITS
  )
  assert f'but {lacks} (images per class: {per_class}). ' in message
  assert not [f for _, _, files in os.walk(out / 'examples') for f in files]  # no example written
  return message, missing


@pytest.mark.parametrize('layout', LAYOUTS)
@pytest.mark.parametrize('classes', [(COVID,), (COVID, NORMAL)], ids=['1_class', '2_classes'])
def test_datasets_without_every_class_are_refused_in_every_layout(layout, classes, tmp_path):
  LAYOUTS[layout](tmp_path / 'data', classes)
  _, missing = _refusal(tmp_path / 'data', tmp_path / 'out')
  absent = [c for c in labels.CLASS_NAMES if c not in classes]
  assert missing == dict.fromkeys(SPLITS, absent)


@pytest.mark.parametrize('layout', LAYOUTS)
def test_datasets_with_every_class_in_every_split_pass(layout, tmp_path):
  LAYOUTS[layout](tmp_path / 'data', labels.CLASS_NAMES)
  summary = _ingest(tmp_path / 'data', tmp_path / 'out').summary
  assert all(summary['splits'][s][c] > 0 for s in SPLITS for c in labels.CLASS_NAMES)


def test_message_of_a_covid_only_folder(tmp_path):
  _class_folders(tmp_path / 'data', (COVID,), 10)
  message, _ = _refusal(tmp_path / 'data', tmp_path / 'out')
  assert message == (
    'Every split needs images of every class, but train lacks NORMAL, VIRAL PNEUMONIA; '
    'eval lacks NORMAL, VIRAL PNEUMONIA; test lacks NORMAL, VIRAL PNEUMONIA (images per '
    'class: train COVID 8, NORMAL 0, VIRAL PNEUMONIA 0; eval COVID 1, NORMAL 0, VIRAL '
    'PNEUMONIA 0; test COVID 1, NORMAL 0, VIRAL PNEUMONIA 0). Add images of the missing '
    'classes (Test/ feeds the test split, Train/ the train and eval splits, a single root of '
    'class folders all three).'
  )


def test_test_folder_lacking_a_class(tmp_path):
  data = tmp_path / 'data'
  _class_folders(data / 'Train', labels.CLASS_NAMES, 10)
  _class_folders(data / 'Test', (COVID, NORMAL), 3, seed=100)
  _, missing = _refusal(data, tmp_path / 'out')
  assert missing == {'train': [], 'eval': [], 'test': [VIRAL]}


def test_tiny_class_whose_images_all_land_in_train(tmp_path):
  data = tmp_path / 'data'
  _class_folders(data, (COVID, NORMAL), 10)
  _class_folders(data, (VIRAL,), 2)
  _, missing = _refusal(data, tmp_path / 'out')
  assert missing == {'train': [], 'eval': [VIRAL], 'test': [VIRAL]}


def test_class_whose_images_are_one_group(tmp_path):
  data = tmp_path / 'data'
  _class_folders(data, (COVID, NORMAL), 10)
  for i in range(10):
    _png(data / VIRAL / f'patient7_{i}.png', 7000 + i)
  _ingest(data, tmp_path / 'ungrouped')  # passes: the 10 images reach every split
  _, missing = _refusal(data, tmp_path / 'grouped', group_regex=r'(patient\d+)_')
  assert missing == {'train': [], 'eval': [VIRAL], 'test': [VIRAL]}  # the patient went to train


def test_class_whose_train_images_are_copies_of_test_images(tmp_path):
  data = tmp_path / 'data'
  _train_test(data, (COVID, NORMAL))
  _class_folders(data / 'Test', (VIRAL,), 3, seed=100)
  os.makedirs(data / 'Train' / VIRAL)
  for i in range(3):
    shutil.copy(data / 'Test' / VIRAL / f'VIRAL_{i}.png', data / 'Train' / VIRAL / f'copy_{i}.png')
  _, missing = _refusal(data, tmp_path / 'out')
  assert missing == {'train': [VIRAL], 'eval': [VIRAL], 'test': []}


def test_class_whose_test_images_are_all_quarantined(tmp_path):
  data = tmp_path / 'data'
  _train_test(data, labels.CLASS_NAMES)
  for path in (data / 'Test' / VIRAL).iterdir():
    path.write_bytes(path.read_bytes()[:40])  # truncated
  _, missing = _refusal(data, tmp_path / 'out', max_bad_fraction=0.5)
  assert missing == {'train': [], 'eval': [], 'test': [VIRAL]}
