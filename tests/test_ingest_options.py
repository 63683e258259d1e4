"""IngestOptions: the ingestion defaults in one place, carried by the component's parameters."""

import inspect
import json

import pytest

from components.ingestion.component import ImageFolderExampleGen
from components.ingestion.options import IngestOptions

CUSTOM = IngestOptions(
  span='2-3',
  eval_fraction=0.2,
  split_ratios=(0.7, 0.2, 0.1),
  group_regex=r'(p\d+)_',
  unknown_classes='ignore',
  max_bad_fraction=0.5,
  max_image_pixels=1000,
  split_seed='other',
  metadata_csv='gs://bucket/meta.csv',
  allow_confounded_sources=True,
)


def test_config_round_trips_through_json():
  config = json.loads(json.dumps(CUSTOM.to_config()))
  assert config['split_ratios'] == '0.7,0.2,0.1'
  assert IngestOptions.from_config(config) == CUSTOM
  assert IngestOptions.from_config({}) == IngestOptions()


def test_the_component_carries_every_option_with_the_same_defaults():
  component = ImageFolderExampleGen(input_base='data', input_fingerprint='f', **CUSTOM.to_config())
  assert {k: component.exec_properties[k] for k in CUSTOM.to_config()} == CUSTOM.to_config()
  parameters = inspect.signature(ImageFolderExampleGen.test_call).parameters  # the function
  defaults = {
    name: p.default for name, p in parameters.items() if name in IngestOptions().to_config()
  }
  assert defaults == IngestOptions().to_config()


def test_from_config_checks_the_values():
  with pytest.raises(ValueError, match='split_ratios must have three values'):
    IngestOptions.from_config({'split_ratios': '0.5,0.5'})
