"""Ingestion of DICOM class folders: each image stored as the 16-bit PNG of its display values,
the files that are not single-frame chest radiographs quarantined with their reason, a patient's
images in one split, the subgroup elements as features, and no identifying element written
anywhere."""

import hmac
import os
import pathlib

import numpy as np
import pyarrow.parquet as pq
from pydicom import uid
import tensorflow as tf

from components import dicom
from components import features
from components import labels
from components.image_header import TRUNCATED
from components.ingestion import discovery
from components.ingestion import image_check
from components.ingestion import ingest
from components.ingestion import IngestOptions
from components.ingestion.manifest import TRANSCODED_TO_PNG
import dicom_files

PER_CLASS = 5
SOURCES = (  # the real slices the images are made of, uncompressed and compressed
  lambda: dicom_files.read('MR_small.dcm'),
  dicom_files.rescaled_12_bit,
  lambda: dicom_files.read('MR_small_RLE.dcm'),
  dicom_files.jpeg_lossless,
  lambda: dicom_files.read('MR_small_jp2klossless.dcm'),
)


def _image(i: int, modality: str = 'CR', patient: str = ''):
  """Image i, of its own patient unless `patient` is given."""
  ds = dicom_files.chest(
    SOURCES[i % len(SOURCES)](), modality, f'{dicom_files.PATIENT_ID}-{patient or i}'
  )
  ds.SOPInstanceUID = uid.generate_uid()  # every file different: none is a duplicate
  ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
  return ds


def _dataset(root: pathlib.Path):
  """Class folders of DICOM images (one without an extension), the refused files in NORMAL/ and
  VIRAL PNEUMONIA/; returns {path: dataset} of the images."""
  images = {}
  for label, name in enumerate(labels.CLASS_NAMES):
    (root / name).mkdir(parents=True)
    for i in range(PER_CLASS):
      path = f'{name}/img{i}' + ('' if (label, i) == (0, 0) else '.dcm')
      images[path] = _image(label * PER_CLASS + i)
      (root / path).write_bytes(dicom_files.to_bytes(images[path]))
  (root / 'COVID' / 'notes').write_text('not an image, no extension')
  cut = dicom_files.to_bytes(_image(0))
  refused = {
    'NORMAL/multi.dcm': dicom_files.to_bytes(dicom_files.multi_frame()),
    'NORMAL/report.dcm': dicom_files.to_bytes(dicom_files.structured_report()),
    'NORMAL/cut.dcm': cut[: len(cut) - 3000],
    'VIRAL PNEUMONIA/ct.dcm': dicom_files.to_bytes(_image(1, modality='CT')),
  }
  for path, data in refused.items():
    (root / path).write_bytes(data)
  return images


def test_a_folder_of_dicom_files_is_ingested_as_16_bit_pngs(tmp_path, monkeypatch):
  root, out = tmp_path / 'data', tmp_path / 'out'
  images = _dataset(root)
  converted = []  # the in-process runner: every conversion is seen here
  convert = dicom.convert
  monkeypatch.setattr(
    dicom, 'convert', lambda data, max_pixels: converted.append(data) or convert(data, max_pixels)
  )
  result = ingest(
    str(root),
    str(out / 'examples'),
    str(out / 'report'),
    IngestOptions(max_bad_fraction=0.5),
  )
  manifest = {r['path']: r for r in pq.read_table(result.manifest_uri).to_pylist()}
  assert manifest['COVID/notes']['reason'] == discovery.NOT_AN_IMAGE_FILE
  quarantined = {p: r['reason'] for p, r in manifest.items() if r['status'] == 'quarantined'}
  assert quarantined == {
    'NORMAL/multi.dcm': dicom.MULTI_FRAME,
    'NORMAL/report.dcm': dicom.NO_PIXEL_DATA,
    'NORMAL/cut.dcm': TRUNCATED,
    'VIRAL PNEUMONIA/ct.dcm': dicom.OUTSIDE_INTENDED_USE,
  }
  assert 'Modality is CT' in manifest['VIRAL PNEUMONIA/ct.dcm']['detail']
  assert len(converted) == len(set(converted)) == len(images) + len(quarantined)  # once each
  ingested = {p: r for p, r in manifest.items() if r['status'] == 'ingested'}
  assert sorted(ingested) == sorted(images)  # the extensionless one too
  assert result.summary['status']['ingested'] == len(images)
  for path, row in ingested.items():
    assert (row['format'], row['stored_format'], row['reason']) == (
      dicom.FORMAT,
      'PNG',
      TRANSCODED_TO_PNG,
    )
    assert (row['height'], row['width'], row['channels']) == (
      images[path].Rows,
      images[path].Columns,
      1,
    )

  stored = {}
  for record in tf.data.TFRecordDataset(
    tf.io.gfile.glob(str(out / 'examples' / 'Split-*' / 'data_tfrecord-*'))
  ):
    example = tf.train.Example.FromString(record.numpy())
    feature = example.features.feature
    assert feature[features.FORMAT_KEY].bytes_list.value[0] == b'PNG'
    png = feature[features.IMAGE_KEY].bytes_list.value[0]
    stored[feature[features.PATH_KEY].bytes_list.value[0].decode()] = png
    # Taken from the converted pixels at inspection: what decoding the stored PNG gives.
    pixels = image_check.pixel_summary(png)
    assert feature[features.BIT_DEPTH_KEY].int64_list.value[0] == pixels.bit_depth == 16
    for key, value in (
      (features.INTENSITY_MEAN_KEY, pixels.intensity_mean),
      (features.INTENSITY_STD_KEY, pixels.intensity_std),
    ):
      assert feature[key].float_list.value[0] == np.float32(value)
  assert sorted(stored) == sorted(images)
  for path, png in stored.items():
    np.testing.assert_allclose(
      dicom_files.png16(png), dicom_files.reference(images[path]), atol=1, err_msg=path
    )

  _assert_no_identifying_string(out)


def _assert_no_identifying_string(out: pathlib.Path):
  """Not one of the test files' identifying strings in any byte of any file under `out`."""
  files = [pathlib.Path(folder) / name for folder, _, names in os.walk(out) for name in names]
  assert files
  for path in files:
    content = path.read_bytes()
    for text in dicom_files.PATIENT_STRINGS:
      assert text.encode() not in content, f'{text!r} written into {path}'


def _patients_dataset(root: pathlib.Path):
  """Train/ + Test/ of DICOM images, two per patient in Train/; patient 'x' has two COVID images in
  Train/ and one in Test/. Returns {path: (patient, view, sex)} ('' for the image without them)."""
  images = {}
  for name in labels.CLASS_NAMES:
    for folder, patients in (('Train', 4), ('Test', 2)):
      for p in range(patients):
        for copy in range(2 if folder == 'Train' else 1):
          images[f'{folder}/{name}/{p}_{copy}.dcm'] = (f'{name[0]}{folder}{p}', 'PA', 'F')
  images['Train/COVID/x_0.dcm'] = images['Train/COVID/x_1.dcm'] = ('x', 'AP', 'M')
  images['Test/COVID/x_2.dcm'] = ('x', 'AP', 'M')
  images['Test/NORMAL/0_0.dcm'] = ('NTest0', '', '')
  for i, (path, (patient, view, sex)) in enumerate(sorted(images.items())):
    ds = _image(i, patient=patient)
    ds.Manufacturer = 'Acme Imaging'
    if view:
      ds.ViewPosition, ds.PatientSex = view, sex
    else:
      for keyword in ('PatientAge', 'PatientSex', 'ViewPosition'):
        ds.pop(keyword, None)
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_bytes(dicom_files.to_bytes(ds))
  return images


def test_a_patients_images_share_a_split_and_only_hashes_and_subgroups_are_written(tmp_path):
  root, out = tmp_path / 'data', tmp_path / 'out'
  images = _patients_dataset(root)
  salt_file = out / 'patient_salt'
  result = ingest(
    str(root),
    str(out / 'examples'),
    str(out / 'report'),
    IngestOptions(eval_fraction=0.25, patient_salt_file=str(salt_file)),
  )
  salt = salt_file.read_bytes()
  assert len(salt) == 64 and salt_file.stat().st_mode & 0o777 == 0o600
  hashes = {
    patient: hmac.new(salt, f'{dicom_files.PATIENT_ID}-{patient}'.encode(), 'sha256').hexdigest()
    for patient, _, _ in images.values()
  }
  manifest = {r['path']: r for r in pq.read_table(result.manifest_uri).to_pylist()}
  assert {p: r['status'] for p, r in manifest.items()} == dict.fromkeys(images, 'ingested')
  assert {p: r['patient_hash'] for p, r in manifest.items()} == {
    p: hashes[patient] for p, (patient, _, _) in images.items()
  }
  splits = {}
  for path, (patient, _, _) in images.items():
    splits.setdefault(patient, set()).add(manifest[path]['split'])
  assert all(len(s) == 1 for s in splits.values()), splits
  assert splits['x'] == {'test'}
  assert {s for (s,) in splits.values()} == {'train', 'eval', 'test'}
  assert result.summary['patients'] == {
    'images': len(images),
    'patients': len(hashes),
    'in_train_and_test': 1,
    'train_images_in_test': 2,
  }

  examples = {}
  for record in tf.data.TFRecordDataset(
    tf.io.gfile.glob(str(out / 'examples' / 'Split-*' / 'data_tfrecord-*'))
  ):
    feature = tf.train.Example.FromString(record.numpy()).features.feature
    examples[feature[features.PATH_KEY].bytes_list.value[0].decode()] = {
      key: feature[key].bytes_list.value[0].decode()
      for key in (features.PATIENT_HASH_KEY,) + features.SUBGROUP_KEYS
    }
  assert examples == {
    path: {
      features.PATIENT_HASH_KEY: hashes[patient],
      features.VIEW_POSITION_KEY: view or 'unknown',
      features.SEX_KEY: sex or 'unknown',
      features.AGE_BAND_KEY: '60-69' if view else 'unknown',
      features.MANUFACTURER_KEY: 'Acme Imaging',
    }
    for path, (patient, view, sex) in images.items()
  }
  _assert_no_identifying_string(out)
