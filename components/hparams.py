"""Trainer hyperparameters: named presets plus validated overrides.

The Trainer's `custom_config` (JSON) holds the ImageSpec's keys (components.image_spec) and
`dict(preset=..., **overrides)`; `from_custom_config` turns the latter back into an `HParams`.
"""

import dataclasses
import os
from typing import Any, Dict, Mapping, Optional, Tuple

from components import audit
from components import backbones
from components import coercion
from components import image_spec

MIXED_PRECISION_MODES = ('auto', 'on', 'off')
LR_SCHEDULES = ('constant', 'plateau', 'cosine')
CLASS_WEIGHTS = ('balanced', 'none')
DEFAULT_PRESET = 'recommended'

PRESETS: Dict[str, Dict[str, Any]] = {
  # The notebook: Adam lr 0.01, 10 epochs, batch 32, no schedule, no early stopping.
  'seed': dict(
    learning_rate=0.01,
    lr_schedule='constant',
    epochs=10,
    batch_size=32,
    early_stopping_patience=0,
    seed=None,
  ),
  # Fine-tuning rate for a pretrained backbone, lr cut on plateaus, early stop on val_loss.
  'recommended': dict(
    learning_rate=1e-4,
    lr_schedule='plateau',
    epochs=30,
    batch_size=32,
    early_stopping_patience=5,
    seed=42,
  ),
}
_DEFAULTS = PRESETS[DEFAULT_PRESET]


@dataclasses.dataclass(frozen=True)
class HParams:
  """Everything the Trainer can be told; the defaults are DEFAULT_PRESET's (see PRESETS)."""

  preset: str = DEFAULT_PRESET
  # Input augmentation (the image itself is the Transform's ImageSpec).
  zoom_range: float = 0.07  # random zoom of training images, as the seed's generator
  # Model.
  backbone: str = 'resnet152v2'  # a key of components.backbones.BACKBONES
  weights: str = 'imagenet'  # 'imagenet', 'none' or a path to the backbone's notop .h5 file
  freeze_layers: int = 300  # the first N layers of the backbone are frozen
  dense_units: Tuple[int, ...] = (512, 256, 64)
  dropout: float = 0.3
  # Momentum of every trainable BatchNormalization's moving statistics (Keras default 0.99).
  # Lower it for short runs from random weights, whose statistics are far from the initial ones.
  bn_momentum: float = 0.99
  # Optimisation.
  learning_rate: float = _DEFAULTS['learning_rate']
  # 'constant'; 'plateau' (ReduceLROnPlateau on val_loss); 'cosine': from learning_rate down to
  # near 0 over `epochs` epochs, whatever val_loss does.
  lr_schedule: str = _DEFAULTS['lr_schedule']
  plateau_factor: float = 0.2  # 'plateau': lr *= factor after plateau_patience flat epochs
  plateau_patience: int = 2
  epochs: int = _DEFAULTS['epochs']
  batch_size: int = _DEFAULTS['batch_size']  # per replica; global batch: batch_size x replicas
  # 'balanced': each class's training loss weighted n_samples / (n_classes * count), counted on
  # the train split (components.class_weights); 'none': every example weighs 1. val_loss is
  # unweighted either way.
  class_weight: str = 'balanced'
  # Epochs without val_loss improvement before training stops; 0 disables.
  early_stopping_patience: int = _DEFAULTS['early_stopping_patience']
  train_steps: Optional[int] = None  # batches per epoch; None or 0: the whole train split
  eval_steps: Optional[int] = None  # eval batches per epoch; None or 0: the whole eval split
  seed: Optional[int] = _DEFAULTS['seed']
  # Hardware.
  mixed_precision: str = 'auto'  # 'auto': mixed_float16 on GPU only; 'on'; 'off'
  xla: bool = False  # jit_compile the train step
  # Start from the last blessed model's weights (when the pipeline resolves one).
  warm_start: bool = False
  # The COVID operating point: the highest threshold on P(COVID) that reaches this sensitivity
  # on the eval split (components.operating_point).
  covid_target_sensitivity: float = 0.95


_TYPES = {f.name: f.type for f in dataclasses.fields(HParams)}
_OVERRIDABLE = set(_TYPES) - {'preset'}


def _coerce(key: str, value: Any) -> Any:
  """Converts a JSON or command-line value to the field's type; ValueError names the key."""
  kind = _TYPES[key]
  if kind == Optional[int] and value is None:
    return None
  if kind in (int, Optional[int]):
    return coercion.to_int(f'Hyperparameter {key!r}', value)
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
    return tuple(coercion.to_int(f'Hyperparameter {key!r}', v) for v in value)
  if not isinstance(value, str):
    raise ValueError(f'Hyperparameter {key!r} must be a string, got {value!r}')
  return value


def _validate(hp: HParams) -> None:
  """Raises ValueError naming the first invalid value."""
  checks = (
    (0.0 <= hp.zoom_range < 1.0, 'zoom_range must be in [0, 1)'),
    (
      hp.weights in ('imagenet', 'none') or hp.weights.endswith(('.h5', '.hdf5')),
      f"weights must be 'imagenet', 'none' or a path to a .h5 file, got {hp.weights!r}",
    ),
    (
      hp.weights in ('imagenet', 'none') or os.path.isfile(hp.weights),
      f'weights file not found: {hp.weights}',
    ),
    (hp.freeze_layers >= 0, 'freeze_layers must be >= 0'),
    (
      len(hp.dense_units) > 0 and all(u > 0 for u in hp.dense_units),
      'dense_units must be a non-empty list of positive ints',
    ),
    (0.0 <= hp.dropout < 1.0, 'dropout must be in [0, 1)'),
    (0.0 < hp.bn_momentum < 1.0, 'bn_momentum must be in (0, 1)'),
    (hp.learning_rate > 0, 'learning_rate must be > 0'),
    (hp.lr_schedule in LR_SCHEDULES, f'lr_schedule must be one of {LR_SCHEDULES}'),
    (0.0 < hp.plateau_factor < 1.0, 'plateau_factor must be in (0, 1)'),
    (hp.plateau_patience >= 1, 'plateau_patience must be >= 1'),
    (
      hp.backbone in backbones.BACKBONES,
      f'backbone must be one of {tuple(backbones.BACKBONES)}, got {hp.backbone!r}',
    ),
    (
      hp.class_weight in CLASS_WEIGHTS,
      f'class_weight must be one of {CLASS_WEIGHTS}, got {hp.class_weight!r}',
    ),
    (hp.epochs >= 1, 'epochs must be >= 1'),
    (hp.batch_size >= 1, 'batch_size must be >= 1'),
    (hp.early_stopping_patience >= 0, 'early_stopping_patience must be >= 0 (0 disables)'),
    (hp.train_steps is None or hp.train_steps >= 0, 'train_steps must be >= 0 (0: whole epochs)'),
    (hp.eval_steps is None or hp.eval_steps >= 0, 'eval_steps must be >= 0 (0: whole split)'),
    (hp.seed is None or hp.seed >= 0, 'seed must be >= 0 or null'),
    (
      hp.mixed_precision in MIXED_PRECISION_MODES,
      f'mixed_precision must be one of {MIXED_PRECISION_MODES}',
    ),
    (
      0.0 < hp.covid_target_sensitivity <= 1.0,
      f'covid_target_sensitivity must be in (0, 1], got {hp.covid_target_sensitivity}',
    ),
  )
  for ok, message in checks:
    if not ok:
      raise ValueError(f'Invalid hyperparameters: {message}')


def resolve(
  preset: str = DEFAULT_PRESET,
  overrides: Optional[Mapping[str, Any]] = None,
) -> HParams:
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


# The prefix of the keys TFX's Google Cloud extensions (Vertex AI Training) read from the same
# custom_config, e.g. 'ai_platform_training_args'.
TFX_PLATFORM_KEY_PREFIX = 'ai_platform_'


def from_custom_config(custom_config: Optional[Mapping[str, Any]]) -> HParams:
  """HParams from a Trainer custom_config: {'preset': name, **overrides, **ImageSpec keys,
  **audit.Regions keys, **TFX extension keys}."""
  foreign = image_spec.CONFIG_KEYS | audit.CONFIG_KEYS
  config = {
    k: v
    for k, v in (custom_config or {}).items()
    if k not in foreign and not k.startswith(TFX_PLATFORM_KEY_PREFIX)
  }
  return resolve(config.pop('preset', DEFAULT_PRESET), config)


def to_dict(hp: HParams) -> Dict[str, Any]:
  """JSON-serializable form (round-trips through from_custom_config)."""
  return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(hp).items()}
