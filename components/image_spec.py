"""ImageSpec: the image the Transform writes and the model reads (size, channels, normalization).

The Transform, the Trainer, the training input and the serving signatures all read this one
spec from their `custom_config`, so they cannot disagree. No TensorFlow import: the CLI reads
the defaults and choices from here.
"""

import dataclasses
from typing import Any, Dict, Mapping, Optional

from components import coercion

CHANNELS = (1, 3)  # chest X-rays are grayscale; 3 keeps colour
NORMALIZATIONS = ('featurewise_center', 'resnet_v2')  # see image_ops.model_input
MIN_SIZE = 32  # ResNet152V2's minimum input size

# custom_config key of each field.
_KEYS = {'size': 'image_size', 'channels': 'image_channels', 'normalization': 'normalization'}
CONFIG_KEYS = frozenset(_KEYS.values())


@dataclasses.dataclass(frozen=True)
class ImageSpec:
  """size: side of the square image in pixels; channels: 1 or 3; normalization: NORMALIZATIONS."""

  size: int = 224
  channels: int = 1
  normalization: str = 'featurewise_center'

  def __post_init__(self):
    if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < MIN_SIZE:
      raise ValueError(
        f'image_size must be an integer >= {MIN_SIZE} (ResNet152V2 minimum), got {self.size!r}'
      )
    if self.channels not in CHANNELS:
      raise ValueError(f'image_channels must be 1 or 3, got {self.channels!r}')
    if self.normalization not in NORMALIZATIONS:
      raise ValueError(f'normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}')

  def to_config(self) -> Dict[str, Any]:
    """The custom_config entries of a Transform or Trainer (JSON)."""
    return {key: getattr(self, field) for field, key in _KEYS.items()}

  @classmethod
  def from_config(cls, config: Optional[Mapping[str, Any]]) -> 'ImageSpec':
    """The spec in a custom_config; other keys are ignored, missing ones take the defaults."""
    config = config or {}
    values = {field: config[key] for field, key in _KEYS.items() if key in config}
    for field in ('size', 'channels'):
      if field in values:
        values[field] = coercion.to_int(_KEYS[field], values[field])
    return cls(**values)
