"""ImageSpec: one spec for the Transform, the Trainer, the input pipeline and the signatures."""

import json

import pytest

from components.image_spec import ImageSpec


def test_custom_config_round_trips_through_json():
  spec = ImageSpec(size=64, channels=3, normalization='resnet_v2')
  config = json.loads(json.dumps(spec.to_config()))
  assert config == {'image_size': 64, 'image_channels': 3, 'normalization': 'resnet_v2'}
  assert ImageSpec.from_config(config) == spec


def test_from_config_ignores_other_keys_and_defaults_missing_ones():
  assert ImageSpec.from_config({'preset': 'seed', 'image_size': '48'}) == ImageSpec(size=48)
  assert ImageSpec.from_config(None) == ImageSpec() == ImageSpec(224, 1, 'featurewise_center')


@pytest.mark.parametrize(
  'config, message',
  [
    ({'image_size': 16}, 'image_size must be an integer >= 32'),
    ({'image_size': 64.5}, 'image_size must be an integer, got 64.5'),
    ({'image_size': True}, 'image_size must be an integer, got True'),
    ({'image_channels': 2}, 'image_channels must be 1 or 3, got 2'),
    ({'normalization': 'imagenet'}, "normalization must be one of .*, got 'imagenet'"),
  ],
)
def test_invalid_values_raise_clear_errors(config, message):
  with pytest.raises(ValueError, match=message):
    ImageSpec.from_config(config)
