"""The model gate's settings: one home for each, with its default (no TensorFlow import).

make_eval_config (eval_config.py) turns a Gate into the Evaluator's TFMA thresholds; RunOptions
and the `cxr run` flags take their defaults from here.
"""

import dataclasses
from typing import Any, Dict, Optional

GATE_ON = ('lower', 'point')


@dataclasses.dataclass(frozen=True)
class Gate:
  """What a candidate model must show on the test split to be blessed.

  Attributes:
    min_accuracy: lowest accepted accuracy (argmax).
    min_covid_recall: lowest accepted COVID recall (sensitivity) at argmax.
    max_accuracy_drop: how far the accuracy may fall below the blessed baseline's (a point
      comparison on the same test images; 0: no drop).
    gate_on: 'lower' judges accuracy and COVID recall by the lower end of their 95% Wilson
      interval, 'point' by the figure itself.
    max_ece: highest accepted top-label expected calibration error (15 bins) of the exported,
      temperature-scaled model; None: not gated.
    shortcut_margin: the masking audit's rule (components/audit.py): a model whose accuracy
      with the lung fields hidden exceeds chance by more than this is suspected of a shortcut.
    allow_shortcuts: bless such a model anyway (the suspicion is still reported).
  """

  min_accuracy: float = 0.80
  min_covid_recall: float = 0.80
  max_accuracy_drop: float = 0.0
  gate_on: str = 'lower'
  max_ece: Optional[float] = None
  shortcut_margin: float = 0.25
  allow_shortcuts: bool = False

  def __post_init__(self):
    for name in (
      'min_accuracy',
      'min_covid_recall',
      'max_accuracy_drop',
      'max_ece',
      'shortcut_margin',
    ):
      value = getattr(self, name)
      if value is not None and not 0.0 <= value <= 1.0:
        raise ValueError(f'{name} must be within [0, 1], got {value}')
    if self.gate_on not in GATE_ON:
      raise ValueError(f'gate_on must be one of {", ".join(GATE_ON)}, got {self.gate_on!r}')

  def to_config(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_config(cls, config: Dict[str, Any]) -> 'Gate':
    return cls(**config)
