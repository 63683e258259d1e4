"""IngestOptions: the ingestion defaults in one place, carried by the component's parameters."""

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
  metadata_csv='gs://bucket/data/meta.csv',
  allow_confounded_sources=True,
)


def test_config_round_trips_through_json():
  config = json.loads(json.dumps(CUSTOM.to_config()))
  assert config['split_ratios'] == '0.7,0.2,0.1'
  assert IngestOptions.from_config(config) == CUSTOM
  assert IngestOptions.from_config({}) == IngestOptions()


def test_the_component_carries_every_option_with_the_same_defaults():
  component = ImageFolderExampleGen(input_base='gs://bucket/data', **CUSTOM.to_config())
  assert {k: component.exec_properties[k] for k in CUSTOM.to_config()} == CUSTOM.to_config()
  defaults = ImageFolderExampleGen(input_base='data').exec_properties
  assert {k: defaults[k] for k in CUSTOM.to_config()} == IngestOptions().to_config()
  # TFX's ExampleGen driver records the span number it resolves as `span`.
  assert 'span' not in CUSTOM.to_config() and CUSTOM.to_config()['span_selection'] == '2-3'


def test_the_component_checks_the_options():
  with pytest.raises(ValueError, match="span must be 'latest', 'all', 'N' or 'N-M'"):
    ImageFolderExampleGen(input_base='data', span_selection='newest')


def test_from_config_checks_the_values():
  with pytest.raises(ValueError, match='split_ratios must have three values'):
    IngestOptions.from_config({'split_ratios': '0.5,0.5'})
