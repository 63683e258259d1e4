"""`cxr run` arguments: demo settings, hyperparameter flags and early, clear errors."""
import pytest

from pipeline import cli
from pipeline import configs


def _options(*argv):
  args = cli.build_parser().parse_args(['run', '--data', 'd', '--output', 'o', *argv])
  return cli.run_options_from_args(args)


def test_defaults_are_the_full_size_imagenet_settings():
  options = _options()
  assert options.image_size == configs.IMAGE_SIZE
  assert options.hparam_overrides == {}
  assert options.trainer_config()['preset'] == configs.PRESET


def test_demo_settings_give_way_to_explicit_flags():
  options = _options('--demo', '--epochs', '3', '--hparam', 'xla=true', '--image-size', '48')
  assert options.image_size == 48
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
