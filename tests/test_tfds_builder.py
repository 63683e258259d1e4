"""The `cxr_folder` TFDS builder gives the same images, labels and splits as the ingestion."""

import os
import shutil

import numpy as np
from PIL import Image
import pyarrow.parquet as pq
from pydicom import uid
import tensorflow_datasets as tfds

from components import demo_data
from components import labels
from components.ingestion import ingest
from components.ingestion import IngestOptions
from components.tfds_cxr import CxrFolderConfig
import dicom_files

SPLITS = ('train', 'eval', 'test')


def _by_split_from_ingestion(root, out):
  result = ingest(
    str(root), str(out / 'examples'), str(out / 'report'), IngestOptions(max_bad_fraction=0.5)
  )
  rows = pq.read_table(result.manifest_uri).to_pylist()
  return {
    s: {
      (r['path'], r['label'], r['sha256'])
      for r in rows
      if r['status'] == 'ingested' and r['split'] == s
    }
    for s in SPLITS
  }


def _by_split_from_tfds(datasets):
  return {
    s: {
      (ex['path'].decode(), int(ex['label']), ex['sha256'].decode())
      for ex in tfds.as_numpy(datasets[s])
    }
    for s in SPLITS
  }


def test_tfds_load_matches_ingestion_counts_labels_and_splits(tmp_path):
  root = tmp_path / 'data'
  demo_data.generate(str(root), train_per_class=8, test_per_class=3, min_size=32, max_size=48)
  covid = root / 'Train' / 'COVID'
  shutil.copy(root / 'Test' / 'COVID' / 'covid_0000.png', covid / 'leaked_from_test.png')
  (covid / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n truncated')
  Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(covid / 'rgb_scan.bmp')

  expected = _by_split_from_ingestion(root, tmp_path / 'ingestion')
  datasets = tfds.load(
    'cxr_folder',
    data_dir=str(tmp_path / 'tfds'),
    download_and_prepare_kwargs={
      'download_config': tfds.download.DownloadConfig(manual_dir=str(root))
    },
  )
  assert _by_split_from_tfds(datasets) == expected
  # 8 + 7 + 7 train: COVID has 9 valid files in Train/ (8 + the BMP), so 8 train + 1 eval.
  assert {s: len(expected[s]) for s in SPLITS} == {'train': 22, 'eval': 3, 'test': 9}
  paths = {p for split in expected.values() for p, _, _ in split}
  assert 'Train/COVID/broken.png' not in paths and 'Train/COVID/leaked_from_test.png' not in paths
  assert 'Train/COVID/rgb_scan.bmp' in paths

  for example in tfds.as_numpy(datasets['test'].take(3)):
    path = example['path'].decode()
    assert labels.CLASS_NAMES[example['label']] == path.split('/')[1]
    with Image.open(root / path) as original:
      assert example['image'].shape == (original.height, original.width, 1)
      np.testing.assert_array_equal(example['image'][..., 0], np.asarray(original))


def test_tfds_config_carries_ingestion_options(tmp_path):
  root = tmp_path / 'data'
  for name in ('COVID', 'Normal', 'Viral Pneumonia', 'Lung_Opacity'):
    os.makedirs(root / name / 'images')
    for i in range(5):
      Image.fromarray(np.full((32, 32), i * 40 + len(name), np.uint8)).save(
        root / name / 'images' / f'{name}-{i}.png'
      )
  config = CxrFolderConfig(
    name='kaggle_ignore_extra_classes', options=IngestOptions(unknown_classes='ignore')
  )
  builder = tfds.builder('cxr_folder', config=config, data_dir=str(tmp_path / 'tfds'))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(root)))
  counts = {s: builder.info.splits[s].num_examples for s in SPLITS}
  assert counts == {'train': 9, 'eval': 3, 'test': 3}
  assert builder.info.features['label'].names == list(labels.CLASS_NAMES)


def test_dicom_images_are_the_ingestions_16_bit_pngs_read_as_8_bits(tmp_path):
  """The TFDS image feature is uint8: a 16-bit PNG reads as its high byte."""
  root, images = tmp_path / 'data', {}
  for name in labels.CLASS_NAMES:
    (root / name).mkdir(parents=True)
    for i in range(4):
      # Each image its own patient: a patient's images share a split, as in ingestion.
      patient = f'{dicom_files.PATIENT_ID}-{name}{i}'
      ds = dicom_files.chest(dicom_files.read('MR_small_RLE.dcm'), patient_id=patient)
      ds.SOPInstanceUID = uid.generate_uid()
      images[f'{name}/{i}.dcm'] = ds
      (root / name / f'{i}.dcm').write_bytes(dicom_files.to_bytes(ds))
  builder = tfds.builder('cxr_folder', data_dir=str(tmp_path / 'tfds'))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(root)))
  examples = [ex for s in SPLITS for ex in tfds.as_numpy(builder.as_dataset(s))]
  assert sorted(ex['path'].decode() for ex in examples) == sorted(images)
  for ex in examples:
    expected = np.round(dicom_files.reference(images[ex['path'].decode()])) // 256
    np.testing.assert_allclose(ex['image'][..., 0], expected, atol=1)
