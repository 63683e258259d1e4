"""`cxr` arguments: demo settings, hyperparameter flags and early, clear errors."""

import os
import random
import shutil
import subprocess
import sys
import textwrap

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
  # The patient salt lives in the output folder, outside the artifacts.
  assert options.ingest == IngestOptions(patient_salt_file=os.path.abspath('o/patient_salt'))
  assert options.hparam_overrides == {}
  assert hparams.from_custom_config(options.trainer_config()) == hparams.HParams()


def test_flags_fill_the_component_settings():
  options = _options(
    '--span',
    '2-3',
    '--group-regex',
    'p(\\d+)',
    '--ignore-unknown-classes',
    '--max-bad-fraction',
    '0.5',
    '--image-size',
    '64',
    '--image-channels',
    '3',
    '--normalization',
    'resnet_v2',
    '--preset',
    'seed',
    '--metadata-csv',
    'meta.csv',
    '--allow-confounded-sources',
    '--patient-salt-file',
    'salt',
  )
  assert options.ingest == IngestOptions(
    span='2-3',
    group_regex='p(\\d+)',
    unknown_classes='ignore',
    max_bad_fraction=0.5,
    metadata_csv=os.path.abspath('meta.csv'),
    allow_confounded_sources=True,
    patient_salt_file=os.path.abspath('salt'),
  )
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


def test_covid_target_sensitivity_flag_reaches_the_trainer():
  assert hparams.HParams().covid_target_sensitivity == 0.95
  options = _options('--covid-target-sensitivity', '0.9')
  assert hparams.from_custom_config(options.trainer_config()).covid_target_sensitivity == 0.9
  with pytest.raises(ValueError, match=r'covid_target_sensitivity must be in \(0, 1\], got 1.5'):
    _options('--covid-target-sensitivity', '1.5')


def test_class_weight_flag_defaults_to_balanced_and_reaches_the_trainer(capsys):
  assert hparams.from_custom_config(_options().trainer_config()).class_weight == 'balanced'
  options = _options('--class-weight', 'none')
  assert options.hparam_overrides == {'class_weight': 'none'}
  assert hparams.from_custom_config(options.trainer_config()).class_weight == 'none'
  with pytest.raises(SystemExit):
    _options('--class-weight', 'inverse')
  assert "choose from 'balanced', 'none'" in capsys.readouterr().err


@pytest.mark.parametrize(
  'argv, message',
  [
    (('--hparam', 'epochs=abc'), "Hyperparameter 'epochs' must be an integer, got 'abc'"),
    (('--hparam', 'nonsense=1'), "Unknown hyperparameter(s) ['nonsense']"),
    (('--hparam', 'epochs'), "--hparam takes KEY=VALUE, got 'epochs'"),
  ],
)
def test_bad_hyperparameters_fail_before_the_pipeline_starts(argv, message):
  with pytest.raises(ValueError) as error:
    _options(*argv)
  assert message in str(error.value)


def test_missing_dataset_is_a_clear_error(capsys, tmp_path):
  status = cli.main(['run', '--data', str(tmp_path / 'absent'), '--output', str(tmp_path / 'out')])
  assert status == 2
  assert f'Dataset folder not found: {tmp_path / "absent"}' in capsys.readouterr().err


def test_unusable_metadata_csv_fails_before_anything_is_written(capsys, tiny_dataset, tmp_path):
  argv = ['run', '--data', tiny_dataset, '--output', str(tmp_path / 'out')]
  assert cli.main([*argv, '--metadata-csv', str(tmp_path / 'none.csv')]) == 2
  line = _single_error(capsys, 'run')
  assert line.endswith(
    f"'{tmp_path / 'none.csv'}' does not exist; pass the path of an existing CSV file"
  )
  assert not (tmp_path / 'out').exists()


def test_confounded_test_sources_are_one_line_and_exit_2(
  tiny_dataset, tmp_path, capsys, monkeypatch
):
  """The ingestion's refusal (LocalDagRunner raises the component's error as it is; here the
  runner only ingests, to stay fast)."""
  from components.ingestion import ingest
  from pipeline import local_runner

  data = tmp_path / 'data'
  shutil.copytree(tiny_dataset, data)
  for name, site in (('COVID', 'siteA'), ('NORMAL', 'siteB'), ('VIRAL PNEUMONIA', 'siteB')):
    (data / 'Test' / site).mkdir(exist_ok=True)
    (data / 'Test' / name).rename(data / 'Test' / site / name)
  monkeypatch.setattr(
    local_runner,
    'run',
    lambda options, console: ingest(
      options.data_root, str(tmp_path / 'examples'), str(tmp_path / 'report'), options.ingest
    ),
  )
  assert cli.main(['run', '--data', str(data), '--output', str(tmp_path / 'out')]) == 2
  line = _single_error(capsys, 'run')
  assert line.startswith(
    'cxr run: error: Test classes confounded with their source: COVID only from siteA (1 image); '
  )
  assert line.endswith(
    'pass --allow-confounded-sources (allow_confounded_sources=True in the API) '
    'to go on with this warning in the report.'
  )


def test_bad_ingestion_options_fail_before_anything_is_written(capsys, tmp_path):
  status = cli.main(
    ['run', '--data', str(tmp_path), '--output', str(tmp_path / 'out'), '--span', 'newest']
  )
  assert status == 2
  assert "span must be 'latest', 'all', 'N' or 'N-M', got 'newest'" in capsys.readouterr().err
  assert not (tmp_path / 'out').exists()


# User errors: one line naming the problem and the fix, exit status 2, nothing created.


@pytest.fixture(scope='module')
def tiny_dataset(tmp_path_factory):
  from components import demo_data

  root = tmp_path_factory.mktemp('data')
  demo_data.generate(str(root), train_per_class=2, test_per_class=1, min_size=16, max_size=16)
  return str(root)


def _single_error(capsys, command):
  """The one line `cxr <command>` printed for a user error (and no traceback)."""
  err = capsys.readouterr().err
  assert 'Traceback' not in err
  lines = [line for line in err.splitlines() if 'error' in line.lower()]
  assert len(lines) == 1 and lines[0].startswith(f'cxr {command}: error: '), err
  return lines[0]


@pytest.mark.parametrize(
  'argv, message',
  [
    (('--min-accuracy', '1.5'), 'min_accuracy must be within [0, 1], got 1.5'),
    (('--min-covid-recall', 'nan'), 'min_covid_recall must be within [0, 1], got nan'),
    (('--span', '99'), "span='99' was requested but"),
    (('--data', 'no-such-folder'), 'Dataset folder not found'),
  ],
)
def test_bad_run_arguments_are_rejected_before_the_output_folder_is_created(
  argv, message, tiny_dataset, tmp_path, capsys
):
  output_dir = tmp_path / 'out'
  assert cli.main(['run', '--data', tiny_dataset, '--output', str(output_dir), *argv]) == 2
  assert message in _single_error(capsys, 'run')
  assert not output_dir.exists()  # no OUT/.run.lock, not even an empty OUT


def test_the_dask_engine_without_a_scheduler_is_refused_before_anything_runs(
  tiny_dataset, tmp_path, capsys
):
  output_dir = tmp_path / 'out'
  argv = ['run', '--data', tiny_dataset, '--output', str(output_dir), '--beam-engine', 'dask']
  assert cli.main(argv) == 2
  assert capsys.readouterr().err == (
    f'cxr run: error: Invalid Beam arguments for {configs.DASK_RUNNER} '
    f'(--runner={configs.DASK_RUNNER}):\n'
    '  - DaskRunner needs --dask_client_address=tcp://HOST:PORT (the scheduler of a running '
    'dask.distributed cluster) or --dask_scheduler_file=PATH\n'
  )
  assert not output_dir.exists()


@pytest.mark.parametrize('command', ['run', 'demo-data'])
def test_output_that_is_a_file_is_a_clear_error(command, tiny_dataset, tmp_path, capsys):
  output = tmp_path / 'notes.txt'
  output.write_text('mine')
  argv = ['run', '--data', tiny_dataset] if command == 'run' else ['demo-data']
  assert cli.main([*argv, '--output', str(output)]) == 2
  assert _single_error(capsys, command) == (
    f'cxr {command}: error: --output {output} is a file, not a folder: give a folder '
    '(it is created if missing)'
  )
  assert output.read_text() == 'mine'


def _damaged_stores(tmp_path):
  """A real (empty) ML Metadata SQLite file cut in half, an empty file and random bytes."""
  from ml_metadata.metadata_store import metadata_store

  from pipeline import metadata_config

  path = tmp_path / 'intact.sqlite'
  metadata_store.MetadataStore(metadata_config.connection_config('', str(path)))
  intact = path.read_bytes()
  return {
    'truncated': (intact[: len(intact) // 2], 'database disk image is malformed'),
    'empty': (b'', 'an empty file'),
    'random': (random.Random(0).randbytes(len(intact)), 'file is not a database'),
  }


@pytest.mark.parametrize('damage', ['truncated', 'empty', 'random'])
def test_damaged_metadata_store_is_named_for_run_history_and_report(
  damage, tiny_dataset, tmp_path, capsys
):
  content, reason = _damaged_stores(tmp_path)[damage]
  output_dir = tmp_path / 'out'
  output_dir.mkdir()
  store = output_dir / 'metadata.sqlite'
  store.write_bytes(content)
  for argv in (['run', '--data', tiny_dataset], ['history'], ['report']):
    assert cli.main([*argv, '--output', str(output_dir)]) == 2
    assert _single_error(capsys, argv[0]) == (
      f'cxr {argv[0]}: error: {store} is not a valid ML Metadata store ({reason}): restore it '
      'from a backup, or move it away to start a new store'
    )
  assert store.read_bytes() == content  # left as it was, for the user to inspect
  assert sorted(os.listdir(output_dir)) == ['metadata.sqlite']  # the run did not start


def _cli(*argv, prefix=()):
  """Runs `python -m pipeline.cli ARGV` (after `prefix`, e.g. unshare); returns the result."""
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
  return subprocess.run(
    [*prefix, sys.executable, '-m', 'pipeline.cli', *argv],
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
    check=False,
  )


def _assert_single_error(result, command):
  assert result.returncode == 2, result.stderr
  assert 'Traceback' not in result.stderr
  lines = [line for line in result.stderr.splitlines() if 'error' in line.lower()]
  assert len(lines) == 1 and lines[0].startswith(f'cxr {command}: error: '), result.stderr
  return lines[0]


def test_damaged_store_in_a_separate_process_prints_one_line(tmp_path):
  (tmp_path / 'metadata.sqlite').write_bytes(random.Random(1).randbytes(8192))
  line = _assert_single_error(_cli('history', '--output', str(tmp_path)), 'history')
  assert f'{tmp_path / "metadata.sqlite"} is not a valid ML Metadata store' in line


# A read-only file system: root ignores file modes, so the test mounts a read-only tmpfs in a
# private mount namespace of its own (unshare), which disappears with the process.

_IN_READ_ONLY_MOUNT = (
  'unshare',
  '--mount',
  '--',
  'sh',
  '-c',
  'mount -t tmpfs -o ro,size=1m tmpfs "$0" && exec "$@"',
)


@pytest.fixture
def read_only_folder(tmp_path):
  folder = tmp_path / 'read-only'
  folder.mkdir()
  if (
    shutil.which('unshare') is None
    or subprocess.run(
      [*_IN_READ_ONLY_MOUNT, str(folder), 'true'], capture_output=True, check=False
    ).returncode
  ):
    pytest.skip('cannot mount a read-only file system here (needs unshare and CAP_SYS_ADMIN)')
  return folder


def test_run_on_a_read_only_file_system_is_a_clear_error(read_only_folder, tiny_dataset):
  output_dir = read_only_folder / 'out'
  line = _assert_single_error(
    _cli(
      'run',
      '--data',
      tiny_dataset,
      '--output',
      str(output_dir),
      prefix=(*_IN_READ_ONLY_MOUNT, str(read_only_folder)),
    ),
    'run',
  )
  assert line == (
    f'cxr run: error: Cannot create the output folder {output_dir}: Read-only file '
    'system. Choose a writable --output.'
  )


def test_existing_output_folder_on_a_read_only_file_system_is_refused(read_only_folder):
  script = textwrap.dedent("""
      import sys
      from pipeline import output_layout, run_lock
      try:
        with run_lock.hold(sys.argv[1]):
          print('locked')
      except output_layout.OutputFolderUnusable as e:
        print(e)
  """)
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
  result = subprocess.run(
    [
      *_IN_READ_ONLY_MOUNT,
      str(read_only_folder),
      sys.executable,
      '-c',
      script,
      str(read_only_folder),
    ],
    env=env,
    capture_output=True,
    text=True,
    timeout=120,
    check=True,
  )
  assert result.stdout.strip() == (
    f'Cannot write to the output folder {read_only_folder}: '
    'Read-only file system. Choose a writable --output.'
  )
