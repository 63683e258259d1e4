"""`cxr run` arguments: demo settings, hyperparameter flags and early, clear errors."""
import pytest

from components import hparams
from components.image_spec import ImageSpec
from components.ingestion.options import IngestOptions
from pipeline import cli
from pipeline import configs


def _options(*argv):
  args = cli.build_parser().parse_args(['run', '--data', 'd', '--output', 'o', *argv])
  return cli.run_options_from_args(args)


def test_defaults_are_the_components_defaults():
  options = _options()
  assert options.image == ImageSpec() and options.image.size == 224
  assert options.ingest == IngestOptions()
  assert options.hparam_overrides == {}
  assert hparams.from_custom_config(options.trainer_config()) == hparams.HParams()


def test_flags_fill_the_component_settings():
  options = _options('--span', '2-3', '--group-regex', 'p(\\d+)', '--ignore-unknown-classes',
                     '--max-bad-fraction', '0.5', '--image-size', '64', '--image-channels', '3',
                     '--normalization', 'resnet_v2', '--preset', 'seed')
  assert options.ingest == IngestOptions(span='2-3', group_regex='p(\\d+)',
                                         unknown_classes='ignore', max_bad_fraction=0.5)
  assert options.image == ImageSpec(64, 3, 'resnet_v2')
  assert options.transform_config() == {'image_size': 64, 'image_channels': 3}
  assert hparams.from_custom_config(options.trainer_config()) == hparams.resolve('seed')


def test_choices_come_from_the_components(monkeypatch, capsys):
  monkeypatch.setitem(hparams.PRESETS, 'tiny', dict(hparams.PRESETS['seed'], epochs=1))
  assert _options('--preset', 'tiny').preset == 'tiny'
  with pytest.raises(SystemExit):
    _options('--normalization', 'imagenet')
  assert "choose from 'featurewise_center', 'resnet_v2'" in capsys.readouterr().err


def test_demo_settings_give_way_to_explicit_flags():
  options = _options('--demo', '--epochs', '3', '--hparam', 'xla=true', '--image-size', '48')
  assert options.image.size == 48
  assert options.hparam_overrides == dict(configs.DEMO_HPARAMS, epochs=3, xla='true')


@pytest.mark.parametrize('argv, message', [
    (('--hparam', 'epochs=abc'), "Hyperparameter 'epochs' must be an integer, got 'abc'"),
    (('--hparam', 'nonsense=1'), "Unknown hyperparameter(s) ['nonsense']"),
    (('--hparam', 'epochs'), "--hparam takes KEY=VALUE, got 'epochs'"),
])
def test_bad_hyperparameters_fail_before_the_pipeline_starts(argv, message):
  with pytest.raises(ValueError) as error:
    _options(*argv)
  assert message in str(error.value)


def test_missing_dataset_is_a_clear_error(capsys, tmp_path):
  status = cli.main(['run', '--data', str(tmp_path / 'absent'), '--output', str(tmp_path / 'out')])
  assert status == 2
  assert f'Dataset folder not found: {tmp_path / "absent"}' in capsys.readouterr().err


def test_bad_ingestion_options_fail_before_anything_is_written(capsys, tmp_path):
  status = cli.main(['run', '--data', str(tmp_path), '--output', str(tmp_path / 'out'),
                     '--span', 'newest'])
  assert status == 2
  assert "span must be 'latest', 'all', 'N' or 'N-M', got 'newest'" in capsys.readouterr().err
  assert not (tmp_path / 'out').exists()
