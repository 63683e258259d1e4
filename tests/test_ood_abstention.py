"""Out-of-distribution abstention end to end: run_fn trains the tiny ResNet152V2 on synthetic chest
X-rays (components.demo_data), then its exported model is shown images that are not chest
X-rays (real photos, rendered text, noise, real CT and MR slices) and unseen in-distribution test
images.

The issue's bar: at least 95% of the non-CXR images abstained (in_distribution false), at most 2%
of the in-distribution test images. The threshold accepts 99% of the eval split, so the test
images abstained are about 1% in expectation; 300 eval and 300 test images keep the chance of
exceeding 2% by luck small.
"""

import gzip
import io
import json
import os

from matplotlib import cbook
import numpy as np
from PIL import Image
import pydicom
from pydicom import data as pydicom_data
from pydicom import pixels
import pytest
import tensorflow as tf

from components import demo_data
from components import features
from components import labels
from components import ood
from components import ood_images
from components import trainer
from components.ingestion import example_encoding
import trainer_inputs

pytestmark = pytest.mark.xdist_group('ood_abstention')  # one worker trains the module's model

SIZE = 32
PER_CLASS = {'train': 40, 'eval': 100, 'test': 100}
# Real CT, MR and nuclear medicine slices and ultrasound frames bundled with pydicom 3 (file,
# frames), all decodable without plugins (JPEG 2000 through Pillow).
DICOM_FILES = (
  ('CT_small.dcm', [0]),
  ('693_J2KI.dcm', [0]),
  ('J2K_pixelrep_mismatch.dcm', [0]),
  ('MR_small.dcm', [0]),
  ('examples_overlay.dcm', [0]),
  ('JPEG2000.dcm', [0]),
  ('examples_rgb_color.dcm', [0]),
  ('examples_ybr_color.dcm', [0, 15, 29]),
)


def _png(array: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format='PNG')
  return buffer.getvalue()


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
  """Min-max window to 8 bits, as a viewer shows a slice without a VOI LUT."""
  pixels = pixels.astype(np.float64)
  return ((pixels - pixels.min()) / (np.ptp(pixels) or 1.0) * 255).round().astype(np.uint8)


def _dicom_slices():
  """('dicom:<file>[frame]', PNG): greyscale through the modality and VOI LUTs (inverted for
  MONOCHROME1), colour as stored."""
  slices = []
  for name, frames in DICOM_FILES:
    dataset = pydicom.dcmread(pydicom_data.get_testdata_file(name))
    array = dataset.pixel_array
    if dataset.PhotometricInterpretation.startswith('MONOCHROME'):
      array = pixels.apply_voi_lut(pixels.apply_modality_lut(array, dataset), dataset)
      if dataset.PhotometricInterpretation == 'MONOCHROME1':
        array = array.max() - array
      array = _to_uint8(array)
    array = array.reshape((-1,) + array.shape[-3 if array.shape[-1] == 3 else -2 :])
    slices += [(f'dicom:{name}[{i}]', _png(np.ascontiguousarray(array[i]))) for i in frames]
  return slices


def _photos():
  """('photo:<name>', PNG) for matplotlib's bundled photos and rasters, whole and in quadrants."""
  rasters = {
    'grace_hopper': np.asarray(Image.open(cbook.get_sample_data('grace_hopper.jpg'))),
    'present': np.asarray(
      Image.open(cbook.get_sample_data('Minduka_Present_Blue_Pack.png')).convert('RGB')
    ),
    'logo': np.asarray(Image.open(cbook.get_sample_data('logo2.png')).convert('RGB')),
    'terrain': _to_uint8(cbook.get_sample_data('jacksboro_fault_dem.npz')['elevation']),
  }
  with gzip.open(cbook.get_sample_data('s1045.ima.gz', asfileobj=False)) as f:
    brain_mr = np.frombuffer(f.read(), np.uint16).reshape(256, 256)
  photos = [('mr:s1045', _png(_to_uint8(brain_mr)))]
  for name, raster in rasters.items():
    h, w = raster.shape[:2]
    crops = {'whole': raster}
    crops.update(
      (
        f'{top}{left}',
        raster[top * h // 2 : (top + 1) * h // 2, left * w // 2 : (left + 1) * w // 2],
      )
      for top in (0, 1)
      for left in (0, 1)
    )
    photos += [(f'photo:{name}:{crop}', _png(np.ascontiguousarray(a))) for crop, a in crops.items()]
  return photos


def _generated():
  """('<kind>', PNG): text, noise and the other generated kinds, from another seed than the
  Trainer's reference set."""
  return [(kind, png) for kind, png in ood_images.generate(per_kind=3, size=96, seed=2026)]


def _cxr_pngs(split, per_class):
  """(label, PNG) of synthetic chest X-rays, 48-80 px, from their own random streams."""
  split_index = list(PER_CLASS).index(split)
  images = []
  for label in range(labels.NUM_CLASSES):
    for i in range(per_class):
      rng = np.random.default_rng([7, split_index, label, i])
      height, width = (int(n) for n in rng.integers(48, 81, 2))
      images.append((label, _png(demo_data.render(label, height, width, rng))))
  return images


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
  """run_fn on 120 train / 300 eval synthetic CXRs (32 px, 4 epochs); returns fn_args and the
  300 test images."""
  raw = {
    split: [
      example_encoding.serialize({features.IMAGE_KEY: png, features.LABEL_KEY: label})
      for label, png in _cxr_pngs(split, PER_CLASS[split])
    ]
    for split in ('train', 'eval')
  }
  custom_config = {
    'preset': 'recommended',
    'image_size': SIZE,
    'image_channels': 1,
    'normalization': 'featurewise_center',
    'weights': 'none',
    'freeze_layers': 0,
    'epochs': 4,
    'batch_size': 16,
    'learning_rate': 1e-3,
    'lr_schedule': 'cosine',
    'bn_momentum': 0.9,
    'early_stopping_patience': 0,
    'eval_steps': 4,
  }
  fn_args = trainer_inputs.transformed_fn_args(tmp_path_factory.mktemp('ood'), raw, custom_config)
  trainer.run_fn(fn_args)
  return fn_args, _cxr_pngs('test', PER_CLASS['test'])


def _served(fn_args, named_pngs):
  serve = tf.saved_model.load(fn_args.serving_model_dir).signatures['serving_default']
  outputs = [
    serve(image_bytes=tf.constant([png for _, png in named_pngs[i : i + 64]]))
    for i in range(0, len(named_pngs), 64)
  ]
  return {key: np.concatenate([o[key].numpy() for o in outputs]) for key in outputs[0]}


def test_non_cxr_images_abstained_and_test_images_accepted(exported):
  fn_args, test_images = exported
  with open(os.path.join(fn_args.serving_model_dir, ood.ASSET)) as f:
    record = json.load(f)
  non_cxr = _photos() + _generated() + _dicom_slices()
  outputs = _served(fn_args, non_cxr)
  accepted = [name for (name, _), inside in zip(non_cxr, outputs['in_distribution']) if inside]
  abstained_share = 1 - len(accepted) / len(non_cxr)
  test_outputs = _served(fn_args, test_images)
  test_abstained = float(np.mean(~test_outputs['in_distribution']))
  figures = (
    f'{record["method"]} (AUROCs {record["auroc"]}), threshold {record["threshold"]:.4g}: '
    f'{abstained_share:.3f} of {len(non_cxr)} non-CXR images abstained (accepted: {accepted}), '
    f'{test_abstained:.3f} of {len(test_images)} test images abstained'
  )
  assert record['eval_images'] == 3 * PER_CLASS['eval'] and record['eval_accept_rate'] >= 0.99
  assert len(non_cxr) >= 50 and {name.split(':')[0] for name, _ in non_cxr} >= {
    'photo',
    'text',
    'uniform_noise',
    'gaussian_noise',
    'dicom',
  }
  assert abstained_share >= 0.95, figures
  assert test_abstained <= 0.02, figures
  # Abstention does not hide the class: every image still gets one.
  assert set(test_outputs['class_id']) <= set(range(labels.NUM_CLASSES))
