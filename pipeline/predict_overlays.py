"""`cxr predict --explain DIR`: Grad-CAM overlay PNGs from a model's `explain` signature.

The heatmaps come from the served graph itself (components.signatures.make_explain_signature).
Each overlay shows the image as the model saw it (decoded and resized as the Transform does,
components.image_ops) under its heatmap (components.gradcam_views).
"""

import os
from typing import Sequence

import numpy as np
import tensorflow as tf

from components import gradcam_views
from components import image_ops

SIGNATURE = 'explain'
SIGNATURE_INPUT = 'image_bytes'
HEATMAP = 'heatmap'
SUFFIX = '_gradcam'


def load_explain_signature(model_dir: str):
  """The model's `explain` signature (image_bytes -> heatmap, ...); ValueError naming the fix
  when the model has none."""
  explain = tf.saved_model.load(model_dir).signatures.get(SIGNATURE)
  if (
    explain is None
    or SIGNATURE_INPUT not in explain.structured_input_signature[1]
    or HEATMAP not in explain.structured_outputs
  ):
    raise ValueError(
      f'{model_dir} has no `{SIGNATURE}` signature returning heatmaps (a model exported before '
      'Grad-CAM): classify without --explain, or train a new model with `cxr run`'
    )
  return explain


def make_dir(path: str) -> None:
  """Creates the overlay folder `path` if needed; ValueError naming the fix if it cannot."""
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise ValueError(
      f'Cannot create the --explain folder {path} ({e.strerror or e}): give a writable folder'
    ) from None


class OverlayNames:
  """A PNG file name per image, from its own name (`x/a.jpg` -> `a_gradcam.png`); a name already
  given (case ignored: some file systems ignore it) gets `_2`, `_3`, ... (`y/a.png` ->
  `a_gradcam_2.png`)."""

  def __init__(self):
    self._used = set()

  def __call__(self, image_path: str) -> str:
    stem = os.path.splitext(os.path.basename(image_path))[0] + SUFFIX
    name, count = f'{stem}.png', 1
    while name.casefold() in self._used:
      count += 1
      name = f'{stem}_{count}.png'
    self._used.add(name.casefold())
    return name


def overlay_png(encoded: bytes, heatmap: np.ndarray) -> bytes:
  """The overlay PNG of an encoded image and its `explain` heatmap [size, size]: the image
  decoded and resized to the heatmap's grid as the Transform does (grey), under the heat."""
  pixels = image_ops.decode_resized(tf.constant(encoded), heatmap.shape[0], channels=1)
  return gradcam_views.overlay_png(np.asarray(pixels), heatmap)


def write_overlays(explain, images: Sequence[bytes], paths: Sequence[str]) -> None:
  """Writes the overlay of each encoded image in `images` to the matching file of `paths`."""
  heatmaps = explain(**{SIGNATURE_INPUT: tf.constant(list(images))})[HEATMAP].numpy()
  for encoded, heatmap, path in zip(images, heatmaps, paths):
    png = overlay_png(encoded, heatmap)
    with open(path, 'wb') as f:
      f.write(png)
