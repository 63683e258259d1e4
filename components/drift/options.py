"""The drift check's settings (no TensorFlow import): RunOptions and `cxr run` take their defaults
from here."""

import dataclasses
from typing import Any, Dict


@dataclasses.dataclass(frozen=True)
class DriftOptions:
  """What the drift check does with a span that drifted from the previous one.

  Attributes:
    allow_drift: train on it anyway (the drift is still recorded and reported); by default the
      run stops before the Transform and the Trainer.
  """

  allow_drift: bool = False

  def to_config(self) -> Dict[str, Any]:
    """The DriftCheck parameters."""
    return dataclasses.asdict(self)

  @classmethod
  def from_config(cls, config: Dict[str, Any]) -> 'DriftOptions':
    return cls(**config)
