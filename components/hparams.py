"""Trainer hyperparameters: named presets plus validated overrides.

The pipeline passes `dict(preset=..., **overrides)` as the Trainer's `custom_config` (JSON);
`from_custom_config` turns it back into an `HParams`.
"""
import dataclasses
import os
from typing import Any, Dict, Mapping, Optional, Tuple

from components import image_ops

MIXED_PRECISION_MODES = ('auto', 'on', 'off')
LR_SCHEDULES = ('constant', 'plateau')


@dataclasses.dataclass(frozen=True)
class HParams:
  """Everything the Trainer can be told; see PRESETS for the values of each preset."""
  preset: str = 'recommended'
  # Input (must match the Transform's image_size / image_channels).
  image_size: int = 224
  image_channels: int = 1
  normalization: str = 'featurewise_center'
  zoom_range: float = 0.07           # random zoom of training images, as the seed's generator
  # Model.
  weights: str = 'imagenet'          # 'imagenet', 'none' or a path to a ResNet152V2 notop .h5 file
  freeze_layers: int = 300           # the first N layers of the ResNet152V2 base are frozen
  dense_units: Tuple[int, ...] = (512, 256, 64)
  dropout: float = 0.3
  # Momentum of every trainable BatchNormalization's moving statistics (Keras default 0.99).
  # Lower it for short runs from random weights, whose statistics are far from the initial ones.
  bn_momentum: float = 0.99
  # Optimisation.
  learning_rate: float = 1e-4
  lr_schedule: str = 'plateau'       # 'constant' or 'plateau' (ReduceLROnPlateau on val_loss)
  plateau_factor: float = 0.2        # 'plateau': lr *= factor after plateau_patience flat epochs
  plateau_patience: int = 2
  epochs: int = 30
  batch_size: int = 32               # per replica; the global batch is batch_size x replicas
  early_stopping_patience: int = 5   # epochs without val_loss improvement; 0 disables
  train_steps: Optional[int] = None  # batches per epoch; None or 0: the whole train split
  eval_steps: Optional[int] = None   # eval batches per epoch; None or 0: the whole eval split
  seed: Optional[int] = 42
  # Hardware.
  mixed_precision: str = 'auto'      # 'auto': mixed_float16 on GPU only; 'on'; 'off'
  xla: bool = False                  # jit_compile the train step
  # Start from the last blessed model's weights (when the pipeline resolves one).
  warm_start: bool = False


PRESETS: Dict[str, Dict[str, Any]] = {
    # The notebook: Adam lr 0.01, 10 epochs, batch 32, no schedule, no early stopping.
    'seed': dict(learning_rate=0.01, lr_schedule='constant', epochs=10, batch_size=32,
                 early_stopping_patience=0, seed=None),
    # Fine-tuning rate for a pretrained backbone, lr cut on plateaus, early stop on val_loss.
    'recommended': dict(learning_rate=1e-4, lr_schedule='plateau', epochs=30, batch_size=32,
                        early_stopping_patience=5, seed=42),
}

_TYPES = {f.name: f.type for f in dataclasses.fields(HParams)}
_OVERRIDABLE = set(_TYPES) - {'preset'}


def _coerce(key: str, value: Any) -> Any:
  """Converts a JSON or command-line value to the field's type; ValueError names the key."""
  kind = _TYPES[key]
  if kind == Optional[int] and value is None:
    return None
  if kind in (int, Optional[int]):
    return _to_int(key, value)
  if kind is float:
    if not isinstance(value, bool):
      try:
        return float(value)
      except (TypeError, ValueError):
        pass
    raise ValueError(f'Hyperparameter {key!r} must be a number, got {value!r}')
  if kind is bool:
    if isinstance(value, str) and value.lower() in ('true', 'false'):
      return value.lower() == 'true'
    if not isinstance(value, bool):
      raise ValueError(f'Hyperparameter {key!r} must be true or false, got {value!r}')
    return value
  if kind == Tuple[int, ...]:
    if isinstance(value, str):
      value = [v for v in value.split(',') if v.strip()]
    if not isinstance(value, (list, tuple)):
      raise ValueError(f'Hyperparameter {key!r} must be a list of integers, got {value!r}')
    return tuple(_to_int(key, v) for v in value)
  if not isinstance(value, str):
    raise ValueError(f'Hyperparameter {key!r} must be a string, got {value!r}')
  return value


def _to_int(key: str, value: Any) -> int:
  if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
    raise ValueError(f'Hyperparameter {key!r} must be an integer, got {value!r}')
  try:
    return int(value)
  except (TypeError, ValueError):
    raise ValueError(f'Hyperparameter {key!r} must be an integer, got {value!r}') from None


def _validate(hp: HParams) -> None:
  """Raises ValueError naming the first invalid value."""
  checks = (
      (hp.image_size >= 32, 'image_size must be >= 32 (ResNet152V2 minimum)'),
      (hp.image_channels in (1, 3), 'image_channels must be 1 or 3'),
      (hp.normalization in image_ops.NORMALIZATIONS,
       f'normalization must be one of {image_ops.NORMALIZATIONS}'),
      (0.0 <= hp.zoom_range < 1.0, 'zoom_range must be in [0, 1)'),
      (hp.weights in ('imagenet', 'none') or hp.weights.endswith(('.h5', '.hdf5')),
       f"weights must be 'imagenet', 'none' or a path to a .h5 file, got {hp.weights!r}"),
      (hp.weights in ('imagenet', 'none') or os.path.isfile(hp.weights),
       f'weights file not found: {hp.weights}'),
      (hp.freeze_layers >= 0, 'freeze_layers must be >= 0'),
      (len(hp.dense_units) > 0 and all(u > 0 for u in hp.dense_units),
       'dense_units must be a non-empty list of positive ints'),
      (0.0 <= hp.dropout < 1.0, 'dropout must be in [0, 1)'),
      (0.0 < hp.bn_momentum < 1.0, 'bn_momentum must be in (0, 1)'),
      (hp.learning_rate > 0, 'learning_rate must be > 0'),
      (hp.lr_schedule in LR_SCHEDULES, f'lr_schedule must be one of {LR_SCHEDULES}'),
      (0.0 < hp.plateau_factor < 1.0, 'plateau_factor must be in (0, 1)'),
      (hp.plateau_patience >= 1, 'plateau_patience must be >= 1'),
      (hp.epochs >= 1, 'epochs must be >= 1'),
      (hp.batch_size >= 1, 'batch_size must be >= 1'),
      (hp.early_stopping_patience >= 0, 'early_stopping_patience must be >= 0 (0 disables)'),
      (hp.train_steps is None or hp.train_steps >= 0, 'train_steps must be >= 0 (0: whole epochs)'),
      (hp.eval_steps is None or hp.eval_steps >= 0, 'eval_steps must be >= 0 (0: whole split)'),
      (hp.seed is None or hp.seed >= 0, 'seed must be >= 0 or null'),
      (hp.mixed_precision in MIXED_PRECISION_MODES,
       f'mixed_precision must be one of {MIXED_PRECISION_MODES}'),
  )
  for ok, message in checks:
    if not ok:
      raise ValueError(f'Invalid hyperparameters: {message}')


def resolve(preset: str = 'recommended', overrides: Optional[Mapping[str, Any]] = None) -> HParams:
  """The preset's hyperparameters with `overrides` applied."""
  if preset not in PRESETS:
    raise ValueError(f'Unknown preset {preset!r}; choose one of {sorted(PRESETS)}')
  overrides = dict(overrides or {})
  unknown = sorted(set(overrides) - _OVERRIDABLE)
  if unknown:
    raise ValueError(f'Unknown hyperparameter(s) {unknown}; known: {sorted(_OVERRIDABLE)}')
  values = dict(PRESETS[preset], **{k: _coerce(k, v) for k, v in overrides.items()})
  hp = HParams(preset=preset, **values)
  _validate(hp)
  return hp


def from_custom_config(custom_config: Optional[Mapping[str, Any]]) -> HParams:
  """HParams from a Trainer custom_config: {'preset': name, **overrides}."""
  config = dict(custom_config or {})
  return resolve(config.pop('preset', 'recommended'), config)


def to_dict(hp: HParams) -> Dict[str, Any]:
  """JSON-serializable form (round-trips through from_custom_config)."""
  return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(hp).items()}
