"""Grad-CAM heatmaps (components.gradcam) made readable: overlay PNGs, the share of heat inside a
region (the lung fields), and per class the images a report shows.
"""

import dataclasses
import io
import math
from typing import Dict, Mapping, Optional, Sequence, Tuple

import matplotlib
import numpy as np
from PIL import Image

from components import labels

OVERLAY_COLORMAP = 'jet'
OVERLAY_OPACITY = 0.5  # of the colour over the hottest pixels; colder ones in proportion
MIN_OVERLAY_SIDE = 224  # smaller images are enlarged by a whole factor, for the eye
EXAMPLES_PER_CLASS = 4


def overlay_png(pixels: np.ndarray, heatmap: np.ndarray) -> bytes:
  """A PNG of the image `pixels` (uint8 [H, W] or [H, W, 1 or 3]) under `heatmap` ([h, w] in
  [0, 1], resized bilinearly to the image) in matplotlib's OVERLAY_COLORMAP.

  Each pixel takes the colour of its heat with an opacity in proportion to it (OVERLAY_OPACITY
  at 1), so cold areas show the image unchanged. An image smaller than MIN_OVERLAY_SIDE is
  enlarged by a whole factor, its pixels repeated (nearest neighbour) as the model saw them.
  """
  image = np.asarray(pixels, np.uint8)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  factor = max(1, math.ceil(MIN_OVERLAY_SIDE / max(image.shape[:2])))
  size = (image.shape[1] * factor, image.shape[0] * factor)  # PIL's (width, height)
  base = Image.fromarray(image).convert('RGB').resize(size, Image.NEAREST)
  heat = Image.fromarray(np.asarray(heatmap, np.float32)).resize(size, Image.BILINEAR)
  heat = np.clip(np.asarray(heat, np.float64), 0.0, 1.0)
  colours = matplotlib.colormaps[OVERLAY_COLORMAP](heat)[..., :3]
  opacity = OVERLAY_OPACITY * heat[..., np.newaxis]
  blended = (1 - opacity) * np.asarray(base, np.float64) / 255.0 + opacity * colours
  buffer = io.BytesIO()
  Image.fromarray(np.round(blended * 255).astype(np.uint8)).save(buffer, format='PNG')
  return buffer.getvalue()


def heat_share(heatmap: np.ndarray, mask: np.ndarray) -> float:
  """The share of `heatmap`'s heat (sum of its values) inside `mask` (bool, same shape); NaN for a
  heatmap without heat."""
  heatmap, mask = np.asarray(heatmap, np.float64), np.asarray(mask, bool)
  if heatmap.shape != mask.shape:
    raise ValueError(f'The mask is {mask.shape}, the heatmap {heatmap.shape}: give them one shape')
  total = heatmap.sum()
  return float(heatmap[mask].sum() / total) if total > 0 else math.nan


@dataclasses.dataclass(frozen=True)
class ClassHeat:
  """Grad-CAM summary of one class.

  heat_in_lungs: the mean share of heat inside the lung mask over the images predicted as this
    class (their heatmaps explain this class); None when no image with heat was.
  predicted: the images predicted as this class.
  errors: indices of this class's images classified as another class, the most confident (the
    probability of the wrong class) first.
  correct: indices of this class's images classified correctly, the most confident first.
  """

  heat_in_lungs: Optional[float]
  predicted: int
  errors: Tuple[int, ...]
  correct: Tuple[int, ...]


def explain_by_class(
  outputs: Mapping[str, np.ndarray],
  truth: Sequence[int],
  lung_mask: np.ndarray,
  examples_per_class: int = EXAMPLES_PER_CLASS,
) -> Dict[str, ClassHeat]:
  """Per class name (labels.CLASS_NAMES), its ClassHeat, at most `examples_per_class` errors and
  as many correct images.

  outputs: the `explain` signature's `probabilities` [N, classes], `class_id` [N] and `heatmap`
  [N, H, W] for N images of true classes `truth`; lung_mask: bool [H, W], the lung fields.
  """
  probabilities = np.asarray(outputs['probabilities'], np.float64)
  predicted, truth = np.asarray(outputs['class_id']), np.asarray(truth)
  shares = np.array([heat_share(heatmap, lung_mask) for heatmap in outputs['heatmap']])
  confidence = probabilities[np.arange(len(predicted)), predicted]

  def most_confident(selected: np.ndarray) -> Tuple[int, ...]:
    indices = np.flatnonzero(selected)
    order = np.argsort(-confidence[indices], kind='stable')
    return tuple(int(i) for i in indices[order][:examples_per_class])

  summary = {}
  for class_id, name in enumerate(labels.CLASS_NAMES):
    explained = shares[(predicted == class_id) & ~np.isnan(shares)]
    summary[name] = ClassHeat(
      heat_in_lungs=float(explained.mean()) if explained.size else None,
      predicted=int(np.sum(predicted == class_id)),
      errors=most_confident((truth == class_id) & (predicted != class_id)),
      correct=most_confident((truth == class_id) & (predicted == class_id)),
    )
  return summary
