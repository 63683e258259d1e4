"""Trainer hyperparameters: presets, overrides, validation and the custom_config round trip."""

import json

import pytest

from components import hparams


def test_seed_preset_is_the_notebook():
  hp = hparams.resolve('seed')
  assert (hp.learning_rate, hp.epochs, hp.batch_size) == (0.01, 10, 32)
  assert hp.lr_schedule == 'constant' and hp.early_stopping_patience == 0
  assert (hp.freeze_layers, hp.dense_units, hp.dropout) == (300, (512, 256, 64), 0.3)
  assert hp.zoom_range == 0.07 and hp.weights == 'imagenet'


def test_recommended_preset_fine_tunes_gently_and_stops_early():
  hp = hparams.resolve('recommended')
  assert hp.learning_rate == 1e-4 and hp.lr_schedule == 'plateau'
  assert hp.early_stopping_patience > 0 and hp.epochs > hparams.resolve('seed').epochs
  assert hp.seed is not None


def test_overrides_win_and_are_coerced():
  hp = hparams.resolve(
    'seed',
    {
      'epochs': '3',
      'learning_rate': '1e-3',
      'xla': 'true',
      'dense_units': '128,32',
      'train_steps': 5.0,
      'seed': None,
      'weights': 'none',
      'mixed_precision': 'on',
    },
  )
  assert (hp.epochs, hp.learning_rate, hp.xla, hp.dense_units) == (3, 1e-3, True, (128, 32))
  assert (hp.train_steps, hp.seed, hp.weights, hp.mixed_precision) == (5, None, 'none', 'on')
  assert hp.batch_size == 32 and hp.preset == 'seed'


def test_every_field_but_the_preset_is_overridable():
  defaults = hparams.to_dict(hparams.resolve('recommended'))
  defaults.pop('preset')
  assert hparams.resolve('recommended', defaults) == hparams.resolve('recommended')


def test_custom_config_round_trips_through_json():
  hp = hparams.resolve('seed', {'epochs': 2, 'dense_units': [16], 'zoom_range': 0.1})
  config = json.loads(json.dumps(hparams.to_dict(hp)))
  assert hparams.from_custom_config(config) == hp


def test_custom_config_as_the_pipeline_writes_it():
  """The Trainer's custom_config also holds the ImageSpec's keys, which are not hyperparameters."""
  hp = hparams.from_custom_config(
    {
      'preset': 'recommended',
      'image_size': 64,
      'image_channels': 1,
      'normalization': 'resnet_v2',
      'warm_start': True,
      'epochs': 8,
    }
  )
  assert hp == hparams.resolve('recommended', {'warm_start': True, 'epochs': 8})
  assert hparams.from_custom_config(None) == hparams.resolve('recommended')
  with pytest.raises(ValueError, match=r"Unknown hyperparameter\(s\) \['image_size'\]"):
    hparams.resolve('recommended', {'image_size': 64})


def test_the_keys_of_tfx_vertex_ai_training_are_not_hyperparameters():
  """The Trainer custom_config of a Vertex AI custom job (pipeline.vertex_training)."""
  from tfx.v1.extensions import google_cloud_ai_platform as vertex_ai

  keys = [
    vertex_ai.ENABLE_VERTEX_KEY,
    vertex_ai.VERTEX_REGION_KEY,
    vertex_ai.TRAINING_ARGS_KEY,
    vertex_ai.JOB_ID_KEY,
    vertex_ai.LABELS_KEY,
  ]
  assert all(key.startswith(hparams.TFX_PLATFORM_KEY_PREFIX) for key in keys)
  config = {key: 'x' for key in keys}
  assert hparams.from_custom_config(dict(config, epochs=3)) == hparams.resolve(
    'recommended', {'epochs': 3}
  )


def test_defaults_are_the_default_presets():
  assert hparams.HParams() == hparams.resolve(hparams.DEFAULT_PRESET)
  defaults = hparams.to_dict(hparams.HParams())
  assert {k: defaults[k] for k in hparams.PRESETS[hparams.DEFAULT_PRESET]} == hparams.PRESETS[
    hparams.DEFAULT_PRESET
  ]


def test_weights_file_must_exist(tmp_path):
  path = tmp_path / 'w.h5'
  with pytest.raises(ValueError, match='weights file not found'):
    hparams.resolve('recommended', {'weights': str(path)})
  path.write_bytes(b'')
  assert hparams.resolve('recommended', {'weights': str(path)}).weights == str(path)


@pytest.mark.parametrize(
  'preset, overrides, message',
  [
    ('fast', {}, r"Unknown preset 'fast'; choose one of \['recommended', 'seed'\]"),
    (
      'seed',
      {'epoch': 3},
      r"Unknown hyperparameter\(s\) \['epoch'\]; known: \['backbone', 'batch_size'",
    ),
    ('seed', {'preset': 'seed'}, r"Unknown hyperparameter\(s\) \['preset'\]"),
    ('seed', {'epochs': 2.5}, "'epochs' must be an integer, got 2.5"),
    ('seed', {'epochs': True}, "'epochs' must be an integer, got True"),
    ('seed', {'batch_size': None}, "'batch_size' must be an integer, got None"),
    ('seed', {'learning_rate': 'fast'}, "'learning_rate' must be a number, got 'fast'"),
    ('seed', {'xla': 1}, "'xla' must be true or false, got 1"),
    ('seed', {'weights': None}, "'weights' must be a string, got None"),
    ('seed', {'epochs': 0}, 'epochs must be >= 1'),
    ('seed', {'learning_rate': 0}, 'learning_rate must be > 0'),
    ('seed', {'mixed_precision': 'yes'}, r"mixed_precision must be one of \('auto', 'on', 'off'\)"),
    ('seed', {'lr_schedule': 'linear'}, 'lr_schedule must be one of'),
    (
      'seed',
      {'class_weight': 'inverse'},
      r"class_weight must be one of \('balanced', 'none'\), got 'inverse'",
    ),
    (
      'seed',
      {'backbone': 'resnet18'},
      r"backbone must be one of \('resnet50v2', 'resnet101v2', 'resnet152v2'\), got 'resnet18'",
    ),
    ('seed', {'weights': 'resnet.ckpt'}, "weights must be 'imagenet', 'none' or a path to a .h5"),
    ('seed', {'dense_units': []}, 'dense_units must be a non-empty list'),
    ('seed', {'dropout': 1.0}, r'dropout must be in \[0, 1\)'),
    ('seed', {'bn_momentum': 1.0}, r'bn_momentum must be in \(0, 1\)'),
    ('seed', {'train_steps': -1}, 'train_steps must be >= 0'),
    ('seed', {'covid_target_sensitivity': 0}, r'covid_target_sensitivity must be in \(0, 1\]'),
    ('seed', {'covid_target_sensitivity': 1.01}, r'covid_target_sensitivity must be in \(0, 1\]'),
  ],
)
def test_invalid_values_raise_clear_errors(preset, overrides, message):
  with pytest.raises(ValueError, match=message):
    hparams.resolve(preset, overrides)
