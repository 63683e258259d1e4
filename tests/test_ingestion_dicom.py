"""Ingestion of DICOM class folders: each image stored as the 16-bit PNG of its display values,
the files that are not single-frame chest radiographs quarantined with their reason, and no patient
element written anywhere."""

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


def _image(i: int, modality: str = 'CR'):
  ds = dicom_files.chest(SOURCES[i % len(SOURCES)](), modality)
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
    stored[feature[features.PATH_KEY].bytes_list.value[0].decode()] = feature[
      features.IMAGE_KEY
    ].bytes_list.value[0]
  assert sorted(stored) == sorted(images)
  for path, png in stored.items():
    np.testing.assert_allclose(
      dicom_files.png16(png), dicom_files.reference(images[path]), atol=1, err_msg=path
    )

  for folder, _, files in os.walk(out):
    for name in files:
      content = (pathlib.Path(folder) / name).read_bytes()
      for text in dicom_files.PATIENT_STRINGS:
        assert text.encode() not in content, f'{text!r} written into {name}'
