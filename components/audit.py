"""The masking audit: does the model still classify with the lung fields hidden?

Public COVID chest X-ray sets are confounded (DeGrave et al. 2021): a model can learn text
markers, patient position or the source hospital instead of the lungs. The audit is
model-agnostic: the Evaluator scores the test split three times, as served, with the lung fields
hidden and with the border band hidden (each region's pixels replaced by the image's own mean,
image_ops.hide_region), from the `evaluation_examples` signature (components/signatures.py).

Rule (`shortcut_suspected`): with the lungs hidden, the accuracy exceeds chance by more than
`Gate.shortcut_margin` (0.25), chance being the accuracy of always answering the test split's most
frequent class (argmax_metrics' `accuracy_above_chance`). A model that reads the lungs falls to
about chance without them; one that still classifies reads something else. Such a model is not
blessed unless the gate allows shortcuts. The borders-hidden figures are reported, not gated: a
large drop from the full accuracy points at markers in the border band.

Regions are fractions of the model input's width and height (x to the right, y down), so they
apply at every image size. The defaults cover the lung fields of a centred PA/AP radiograph
generously: two ellipses, x 0.11-0.49 and 0.51-0.89, y 0.14-0.80; the border band is the outer
10% of each side, where text markers and burnt-in labels sit. No TensorFlow import (the CLI reads
the defaults).
"""

import dataclasses
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

# Outputs of the `evaluation_examples` signature besides `probabilities`.
LUNGS_HIDDEN = 'lungs_hidden_probabilities'
BORDERS_HIDDEN = 'borders_hidden_probabilities'
REGIONS_FILE = 'assets.extra/audit_regions.json'  # in the export, beside the operating point

Ellipse = Tuple[float, float, float, float]  # centre x, centre y, radius x, radius y (fractions)

_CONFIG_KEY = 'audit_regions'  # the Trainer's custom_config entry
CONFIG_KEYS = frozenset({_CONFIG_KEY})


@dataclasses.dataclass(frozen=True)
class Regions:
  """The regions the audit hides. lungs: ellipses (cx, cy, rx, ry) as fractions of the width and
  height; border: width of the border band as a fraction of each side."""

  lungs: Tuple[Ellipse, ...] = ((0.30, 0.47, 0.19, 0.33), (0.70, 0.47, 0.19, 0.33))
  border: float = 0.10

  def __post_init__(self):
    lungs = tuple(tuple(float(v) for v in ellipse) for ellipse in self.lungs)
    object.__setattr__(self, 'lungs', lungs)
    if not lungs or any(len(e) != 4 for e in lungs):
      raise ValueError(
        f'audit lungs must be one or more ellipses cx,cy,rx,ry (fractions), got {self.lungs}'
      )
    for cx, cy, rx, ry in lungs:
      if not (0 <= cx <= 1 and 0 <= cy <= 1 and 0 < rx <= 1 and 0 < ry <= 1):
        raise ValueError(
          f'audit lung ellipse {cx},{cy},{rx},{ry}: centres must lie in [0, 1] and radii in '
          '(0, 1] (fractions of the image width and height)'
        )
    if not 0 < self.border < 0.5:
      raise ValueError(f'audit border must be a fraction in (0, 0.5), got {self.border}')

  def to_json(self) -> Dict[str, Any]:
    return {'lungs': [list(e) for e in self.lungs], 'border': self.border}

  @classmethod
  def from_json(cls, value: Mapping[str, Any]) -> 'Regions':
    return cls(tuple(tuple(e) for e in value['lungs']), value['border'])

  def to_config(self) -> Dict[str, Any]:
    """The Trainer's custom_config entry."""
    return {_CONFIG_KEY: self.to_json()}

  @classmethod
  def from_config(cls, config: Optional[Mapping[str, Any]]) -> 'Regions':
    """The regions in a custom_config (the defaults when it has none)."""
    entry = (config or {}).get(_CONFIG_KEY)
    return cls.from_json(entry) if entry else cls()

  @classmethod
  def parse(cls, lungs: Optional[str] = None, border: Optional[float] = None) -> 'Regions':
    """Regions from the CLI's `--audit-lungs 'cx,cy,rx,ry;cx,cy,rx,ry'` and `--audit-border`."""
    default = cls()
    ellipses = default.lungs
    if lungs:
      try:
        ellipses = tuple(tuple(float(v) for v in part.split(',')) for part in lungs.split(';'))
      except ValueError:
        raise ValueError(
          f"--audit-lungs takes ellipses 'cx,cy,rx,ry;cx,cy,rx,ry' (fractions), got {lungs!r}"
        ) from None
    return cls(ellipses, default.border if border is None else border)


def masks(regions: Regions, height: int, width: int) -> Dict[str, np.ndarray]:
  """{output name: bool [height, width] mask of the pixels it hides}, at pixel centres."""
  y, x = np.mgrid[0:height, 0:width].astype(np.float64)
  x, y = (x + 0.5) / width, (y + 0.5) / height
  lungs = np.zeros((height, width), dtype=bool)
  for cx, cy, rx, ry in regions.lungs:
    lungs |= ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1
  b = regions.border
  borders = (x < b) | (x > 1 - b) | (y < b) | (y > 1 - b)
  return {LUNGS_HIDDEN: lungs, BORDERS_HIDDEN: borders}


def lung_mask(regions: Regions, height: int, width: int) -> np.ndarray:
  """bool [height, width]: the lung fields."""
  return masks(regions, height, width)[LUNGS_HIDDEN]


def shortcut_suspected(lungs_hidden_above_chance: float, margin: float) -> bool:
  """The audit's rule (module docstring)."""
  return lungs_hidden_above_chance > margin


def describe(regions: Regions) -> Sequence[str]:
  """The regions in words, for reports."""
  lungs = '; '.join(
    f'centre ({cx:g}, {cy:g}), radii ({rx:g}, {ry:g})' for cx, cy, rx, ry in regions.lungs
  )
  return [
    f'lung fields: ellipses {lungs} (fractions of width and height)',
    f'border band: outer {regions.border:.0%} of each side',
  ]
