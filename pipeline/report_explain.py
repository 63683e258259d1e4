"""The report's Grad-CAM: per class, the share of heat inside the lung fields, and overlays of its
most confident errors, then its most confident correct images, from the model's `explain`
signature (components.signatures.make_explain_signature) on the test split.

At most MAX_PER_CLASS test images of each class, the first in the split's files, keep a report of
a large test split within a minute or two on a CPU (Grad-CAM costs about 1.3 serving calls).
Heatmaps have image_size / 32 cells a side (ResNet152V2's last block): at the demo's 32 px a
single cell, so the heat is uniform and its share in the lungs is only the lungs' share of the
image; the section says so when every heatmap is uniform.
"""

import dataclasses
import glob
import os
from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf
from tfx.utils import path_utils

from components import audit
from components import features
from components import gradcam_views
from components import labels
from components.ingestion.options import TEST
from pipeline import predict_overlays
from pipeline import report_format

MAX_PER_CLASS = 64
_BATCH = 32


@dataclasses.dataclass(frozen=True)
class Explained:
  """Grad-CAM of the first test images: per class its gradcam_views.ClassHeat, and the overlay
  PNG file names written into the report folder (errors first, then correct images)."""

  images: int
  uniform: bool  # every heatmap is one value: the feature map has a single cell
  classes: Dict[str, gradcam_views.ClassHeat]
  overlays: Dict[str, Tuple[Tuple[str, str], ...]]  # class -> ((file name, caption), ...)

  def heat_in_lungs(self) -> Dict[str, Optional[float]]:
    return {name: heat.heat_in_lungs for name, heat in self.classes.items()}


def _test_images(examples_uri: str) -> Tuple[List[bytes], List[int]]:
  """The encoded images and labels of the first MAX_PER_CLASS test examples of each class."""
  files = sorted(glob.glob(os.path.join(examples_uri, f'Split-{TEST}', '*')))
  spec = {
    features.IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
    features.LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
  }
  images, truth = [], []
  for record in tf.data.TFRecordDataset(
    files, 'GZIP' if files and files[0].endswith('.gz') else None
  ):
    example = tf.io.parse_single_example(record, spec)
    label = int(example[features.LABEL_KEY])
    if truth.count(label) < MAX_PER_CLASS:
      images.append(example[features.IMAGE_KEY].numpy())
      truth.append(label)
  return images, truth


def explain_test_split(
  model_uri: Optional[str],
  examples_uri: Optional[str],
  regions: Optional[audit.Regions],
  report_dir: Optional[str] = None,
) -> Optional[Explained]:
  """Grad-CAM of the model on the test split, its overlays written into report_dir (none without
  one); None when the model has no `explain` signature (exported before Grad-CAM) or there is no
  test split."""
  if not model_uri or not examples_uri:
    return None
  explain = tf.saved_model.load(path_utils.serving_model_dir(model_uri)).signatures.get(
    predict_overlays.SIGNATURE
  )
  images, truth = _test_images(examples_uri)
  if explain is None or not images:
    return None
  batches = [
    explain(**{predict_overlays.SIGNATURE_INPUT: tf.constant(images[i : i + _BATCH])})
    for i in range(0, len(images), _BATCH)
  ]
  outputs = {
    key: np.concatenate([batch[key].numpy() for batch in batches])
    for key in ('probabilities', 'class_id', predict_overlays.HEATMAP)
  }
  heatmaps = outputs[predict_overlays.HEATMAP]
  lungs = audit.lung_mask(regions or audit.Regions(), *heatmaps.shape[1:])
  classes = gradcam_views.explain_by_class(outputs, truth, lungs)
  overlays = {}
  for name, heat in classes.items() if report_dir else ():
    written = []
    for kind, indices in (('error', heat.errors), ('correct', heat.correct)):
      for i in indices:
        predicted = labels.CLASS_NAMES[outputs['class_id'][i]]
        confidence = outputs['probabilities'][i, outputs['class_id'][i]]
        file_name = f'gradcam_{labels.canonical_name(name).lower()}_{kind}_{i}.png'
        with open(os.path.join(report_dir, file_name), 'wb') as f:
          f.write(predict_overlays.overlay_png(images[i], heatmaps[i]))
        written.append((file_name, f'{kind}: predicted {predicted} ({confidence:.2f})'))
    overlays[name] = tuple(written)
  uniform = bool(np.all(heatmaps.max(axis=(1, 2)) == heatmaps.min(axis=(1, 2))))
  return Explained(len(images), uniform, classes, overlays)


def explain_section(explained: Optional[Explained]) -> List[str]:
  """Heat in the lung fields per class, and each class's overlays."""
  lines = ['## Grad-CAM (where the model looks)', '']
  if explained is None:
    return lines + ['Not available: the model has no `explain` signature, or no test images.', '']
  lines += [
    f'Grad-CAM of the predicted class on {explained.images} test images (the first '
    f'{MAX_PER_CLASS} of each class). Heat in the '
    "lung fields: the mean share of each heatmap inside the audit's lung regions, over the images "
    'predicted as the class.',
    '',
  ]
  if explained.uniform:
    lines += [
      'Every heatmap is uniform: the last feature map has a single cell at this image size '
      "(image_size / 32 cells a side), so the share below is only the lungs' share of the image.",
      '',
    ]
  lines += report_format.table(
    ['class', 'predicted', 'heat in the lung fields'],
    [
      [name, f'{heat.predicted}', report_format.fmt(heat.heat_in_lungs)]
      for name, heat in explained.classes.items()
    ],
  )
  for name, overlays in explained.overlays.items():
    lines += ['', f'{name}: most confident errors, then most confident correct images.', '']
    lines += [f'![{caption}]({file_name})' for file_name, caption in overlays] or ['None.']
  return lines + ['']
