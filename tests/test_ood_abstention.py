"""Out-of-distribution abstention end to end: the Trainer's fit (trainer.fit_ood) on a small CNN
trained on synthetic chest X-rays (components.demo_data), exported with the real serving
signatures, then shown images that are not chest X-rays (real photos, rendered text, noise, real
CT, MR, nuclear medicine and ultrasound images) and unseen in-distribution test images.

The issue's bar: at least 95% of the non-CXR images abstained (in_distribution false), at most 2%
of the in-distribution test images. Each of the two scores accepts 99.5% of the eval split, so
about 1% of test images are abstained in expectation; 300 eval and 450 test images keep the chance
of exceeding 2% by luck small. The small CNN stands for a weak model (near chance on these
images after its 10 epochs): its features alone cannot be trusted to tell photos from X-rays,
which is what the appearance score is for.
"""

import gzip
import io

from matplotlib import cbook
import numpy as np
from PIL import Image
import pydicom
from pydicom import data as pydicom_data
from pydicom import pixels
import pytest
import tensorflow as tf

from benchmarks import tfx_transform
from components import audit
from components import demo_data
from components import labels
from components import model as model_lib
from components import ood_images
from components import signatures
from components import trainer
from components.image_spec import ImageSpec
from components.ingestion import example_encoding

pytestmark = pytest.mark.xdist_group('ood_abstention')  # one worker fits the module's model

IMAGE = ImageSpec(32, 1, 'featurewise_center')
PER_CLASS = {'train': 60, 'eval': 100, 'test': 150}
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


def _to_uint8(values: np.ndarray) -> np.ndarray:
  """Min-max window to 8 bits, as a viewer shows a slice without a VOI LUT."""
  values = values.astype(np.float64)
  return ((values - values.min()) / (np.ptp(values) or 1.0) * 255).round().astype(np.uint8)


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
  """('photo:<name>', PNG) for matplotlib's bundled photos and rasters, whole and in quadrants,
  and its brain MR slice."""
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
  """('<kind>', PNG): text, noise and the other generated kinds, from another seed and size than
  the Trainer's reference set."""
  return ood_images.generate(per_kind=3, size=96, seed=2026)


def _cxr_pngs(split):
  """(label, PNG) of synthetic chest X-rays, 48-80 px, each from its own random stream."""
  split_index = list(PER_CLASS).index(split)
  images = []
  for label in range(labels.NUM_CLASSES):
    for i in range(PER_CLASS[split]):
      rng = np.random.default_rng([7, split_index, label, i])
      height, width = (int(n) for n in rng.integers(48, 81, 2))
      images.append((label, _png(demo_data.render(label, height, width, rng))))
  return images


def _small_cnn():
  """Two convolutions, global pooling and a 16-unit penultimate layer."""
  tf.keras.utils.set_random_seed(0)
  return tf.keras.Sequential(
    [
      tf.keras.Input((IMAGE.size, IMAGE.size, 3)),
      tf.keras.layers.Conv2D(8, 3, activation='relu', padding='same'),
      tf.keras.layers.MaxPooling2D(2),
      tf.keras.layers.Conv2D(16, 3, activation='relu', padding='same'),
      tf.keras.layers.GlobalAveragePooling2D(),
      tf.keras.layers.Dense(16, activation='relu'),
      tf.keras.layers.Dense(labels.NUM_CLASSES, activation='softmax', name=model_lib.OUTPUT_NAME),
    ]
  )


@pytest.fixture(scope='module')
def served(tmp_path_factory):
  """The serving_default signature of the small CNN with the detector trainer.fit_ood chose, and
  the OOD record."""
  raw = str(tmp_path_factory.mktemp('raw') / 'train.gz')
  train = _cxr_pngs('train')
  with tf.io.TFRecordWriter(raw, options='GZIP') as writer:
    for label, png in train:
      writer.write(example_encoding.serialize(tfx_transform.raw_features(png, label)))
  transform_output = tfx_transform.run(
    {'train': raw}, str(tmp_path_factory.mktemp('transform')), IMAGE.to_config()
  )
  tft_layer = transform_output.transform_features_layer()

  def batches(images):
    model_input = signatures.serving_model_input(
      tft_layer, IMAGE, tf.constant([png for _, png in images])
    )
    truth = np.array([label for label, _ in images])
    return tf.data.Dataset.from_tensor_slices((model_input, truth)).batch(64)

  model = _small_cnn()
  model.compile(tf.keras.optimizers.Adam(3e-3), 'sparse_categorical_crossentropy')
  model.fit(batches(train).shuffle(8, seed=0), epochs=10, verbose=0)
  model_run = str(tmp_path_factory.mktemp('model_run'))
  detector, record = trainer.fit_ood(
    model,
    batches(train),
    trainer.observe(model, batches(_cxr_pngs('eval'))),
    trainer.reference_images_data(transform_output, IMAGE, 64),
    model_run,
  )
  path = str(tmp_path_factory.mktemp('serving'))
  tf.saved_model.save(
    model,
    path,
    signatures=signatures.make_serving_signatures(
      model, transform_output, IMAGE, 0.5, audit.Regions(), detector
    ),
  )
  return tf.saved_model.load(path).signatures['serving_default'], record


def _served(serve, named_pngs):
  outputs = [
    serve(image_bytes=tf.constant([png for _, png in named_pngs[i : i + 64]]))
    for i in range(0, len(named_pngs), 64)
  ]
  return {key: np.concatenate([o[key].numpy() for o in outputs]) for key in outputs[0]}


def test_non_cxr_images_are_abstained_and_test_images_accepted(served):
  serve, record = served
  non_cxr = _photos() + _generated() + _dicom_slices()
  outputs = _served(serve, non_cxr)
  accepted = [name for (name, _), inside in zip(non_cxr, outputs['in_distribution']) if inside]
  test_images = _cxr_pngs('test')
  test_abstained = float(np.mean(~_served(serve, test_images)['in_distribution']))
  figures = (
    f'{record.method} (AUROCs {record.auroc}, appearance {record.appearance}): '
    f'{len(accepted)} of {len(non_cxr)} non-CXR images accepted ({accepted}), '
    f'{test_abstained:.4f} of {len(test_images)} test images abstained'
  )
  assert record.eval_images == 3 * PER_CLASS['eval'] and record.eval_accept_rate >= 0.99, figures
  assert record.note is None, figures
  kinds = {name.split(':')[0] for name, _ in non_cxr}
  assert len(non_cxr) >= 50 and kinds >= {'photo', 'text', 'uniform_noise', 'dicom', 'mr'}
  assert len(accepted) <= 0.05 * len(non_cxr), figures
  assert test_abstained <= 0.02, figures
