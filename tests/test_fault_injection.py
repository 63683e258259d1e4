"""Fault injection: real `cxr run` processes killed with SIGKILL, then the same command again.

Four runs of one command on one output folder: killed during the Trainer (from outside, once its
output folder appears), killed while the Pusher copies the model (half of the weights written),
killed right after the Pusher's rename (before ML Metadata hears of the push), then a run that
finishes. The Pusher kills are injected by the test's own start-up script, which wraps
`shutil.copyfile` / `os.rename` in the child process: the copy takes about 0.2 s, too short to hit
reliably from outside, and the rename window is microseconds. The child's TMPDIR is a private
folder that must stay empty: nothing of a run, killed or not, may be left in the temp folder.
"""

import glob
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import tensorflow as tf

from components import demo_data
from components import labels
from components.pusher import versioned_dir
from pipeline import cli
from pipeline import history
from pipeline.output_layout import layout

pytestmark = pytest.mark.e2e

RUN_TIMEOUT = 900  # seconds; a hung run fails the test instead of blocking the suite
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# `cxr` with an optional fault: CXR_FAULT=push_copy dies halfway through copying the weights into
# serving/.tmp-<version>; CXR_FAULT=push_rename dies right after serving/.tmp-<version> is renamed.
_CXR_WITH_FAULT = textwrap.dedent("""
    import os, shutil, signal, sys
    fault = os.environ.get('CXR_FAULT')
    def die():
      os.kill(os.getpid(), signal.SIGKILL)
    if fault == 'push_copy':
      copyfile = shutil.copyfile
      def copy_then_die(src, dst, **kwargs):
        if '/serving/.tmp-' in dst and os.path.basename(dst).startswith('variables.data'):
          with open(src, 'rb') as f, open(dst, 'wb') as g:
            g.write(f.read(os.path.getsize(src) // 2))
          die()
        return copyfile(src, dst, **kwargs)
      shutil.copyfile = copy_then_die
    elif fault == 'push_rename':
      rename = os.rename
      def rename_then_die(src, dst, **kwargs):
        rename(src, dst, **kwargs)
        if os.path.basename(src).startswith('.tmp-'):
          die()
      os.rename = rename_then_die
    from pipeline import cli
    sys.exit(cli.main(sys.argv[1:]))
""")


class _Runner:
  """Starts the same `cxr run` command, each time in a fresh process with a private TMPDIR."""

  def __init__(self, root):
    self.data = str(root / 'data')
    self.output = str(root / 'output')
    self.temp = str(root / 'tmp')
    self.logs = str(root / 'logs')
    os.makedirs(self.temp)
    os.makedirs(self.logs)
    demo_data.generate(
      self.data, train_per_class=10, test_per_class=4, seed=3, min_size=64, max_size=96
    )
    self.count = 0

  def start(self, fault=''):
    self.count += 1
    env = dict(os.environ, TMPDIR=self.temp, CXR_FAULT=fault, PYTHONPATH=REPO)
    with open(os.path.join(self.logs, f'run{self.count}.log'), 'w') as log:
      return subprocess.Popen(
        [
          sys.executable,
          '-c',
          _CXR_WITH_FAULT,
          'run',
          '--data',
          self.data,
          '--output',
          self.output,
          '--demo',
          '--backbone',
          'resnet50v2',
          '--epochs',
          '1',
          '--image-size',
          '32',
          '--min-accuracy',
          '0',
          '--min-covid-recall',
          '0',
          '--beam-arg=--direct_running_mode=in_memory',
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
      )

  def wait(self, process):
    try:
      return process.wait(timeout=RUN_TIMEOUT)
    finally:
      if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

  def printed(self):
    """What the last run printed (stdout and stderr)."""
    with open(os.path.join(self.logs, f'run{self.count}.log')) as f:
      return f.read()

  def log(self):
    return self.printed()[-3000:]


def _wait_for(predicate, process, timeout=RUN_TIMEOUT):
  deadline = time.monotonic() + timeout
  while not predicate():
    assert process.poll() is None, 'the run ended before the fault could be injected'
    assert time.monotonic() < deadline
    time.sleep(0.2)


def _temp_dirs(serving_dir):
  return sorted(glob.glob(os.path.join(serving_dir, versioned_dir.TEMP_PREFIX + '*')))


def _assert_console_of_a_run_with_cached_steps(console, run, output_dir):
  """A start and an end line per step of `run` (its history.RunRecord: ML Metadata's steps),
  with the key figures of what the earlier runs made, the summary and the log's path: at most 100
  lines besides epoch lines; TFX's detail in the log."""
  lines = console.splitlines()
  epochs = [line for line in lines if re.match(r'  epoch \d+/\d+ \(', line)]
  assert len(lines) - len(epochs) <= 100, console
  log_path = layout(output_dir).log_path(run.run_id)
  assert lines[0] == lines[-1] == f'Log: {log_path}'
  figures = {}  # step: its end line without the step and the seconds
  steps = run.ran + run.cached
  assert len(steps) == 11
  for step in steps:
    assert f'{step}: started' in [line.split('] ', 1)[-1] for line in lines], console
    [end] = [line for line in lines if re.match(rf'\[\s*\d+/11\] {step}: (ran|cached), ', line)]
    figures[step] = re.sub(r', \d+ s', '', end.split(': ', 1)[1], count=1)
  assert figures['ImageFolderExampleGen'] == (
    'cached; 42 files found = 42 ingested + 0 quarantined + 0 duplicates + 0 ignored '
    '(not images); train 27, eval 3, test 12'
  )
  assert figures['ExampleValidator'] == 'cached; anomalies: none'
  assert figures['DriftCheck'] == (
    'cached; span 0: no earlier span accepted: nothing to compare (first span)'
  )
  assert re.fullmatch(
    r'cached; 30 images \(train \+ eval\), learned mean 0\.\d{4}', figures['Transform']
  )
  assert figures['latest_blessed_model_resolver'] == f'ran; baseline model {run.baseline_model_id}'
  assert re.fullmatch(
    r'cached; best epoch 1/1 \(val_loss [\d.]+, val_accuracy [\d.]+\)', figures['Trainer']
  )
  assert figures['Evaluator'] == 'cached; BLESSED'
  [version] = versioned_dir.versions(layout(output_dir).serving_dir)
  assert (
    figures['AtomicPusher']
    == f'ran; version {version} at {layout(output_dir).serving_dir}/{version}'
  )
  with open(log_path, encoding='utf-8') as f:
    log = f.read()
  for detail in ('Using deployment config', 'Component AtomicPusher is finished.'):
    assert detail in log and detail not in console


def test_killed_runs_recover_on_rerun_with_one_push_and_nothing_in_tmp(tmp_path, capsys):
  runner = _Runner(tmp_path)
  serving_dir = layout(runner.output).serving_dir

  # 1. SIGKILL (from outside) while the Trainer trains.
  process = runner.start()
  trainer_models = os.path.join(runner.output, 'pipeline_root', 'Trainer', 'model', '*')
  _wait_for(lambda: glob.glob(trainer_models), process)
  time.sleep(3)
  os.kill(process.pid, signal.SIGKILL)
  assert runner.wait(process) == -signal.SIGKILL
  assert os.listdir(runner.temp) == []
  assert os.listdir(os.path.join(runner.output, '.tmp'))  # the run's own, swept by the next run

  # 2. The same command, killed halfway through the Pusher's copy.
  process = runner.start('push_copy')
  assert runner.wait(process) == -signal.SIGKILL, runner.log()
  assert versioned_dir.versions(serving_dir) == [] and len(_temp_dirs(serving_dir)) == 1
  assert os.listdir(runner.temp) == []

  # 3. Again, killed right after the rename that publishes the version.
  process = runner.start('push_rename')
  assert runner.wait(process) == -signal.SIGKILL, runner.log()
  [version] = versioned_dir.versions(serving_dir)
  assert _temp_dirs(serving_dir) == []
  assert os.listdir(runner.temp) == []

  # 4. Again, to the end.
  process = runner.start()
  assert runner.wait(process) == 0, runner.log()
  assert os.listdir(runner.temp) == []
  assert not os.path.exists(os.path.join(runner.output, '.tmp'))

  # Serving: the one model, published once, complete; metadata names that version.
  assert versioned_dir.versions(serving_dir) == [version] and _temp_dirs(serving_dir) == []
  killed_trainer, killed_copy, killed_rename, finished = history.read_history(runner.output)
  assert killed_trainer.interrupted == ['Trainer'] and killed_trainer.model_id is None
  assert killed_copy.interrupted == ['AtomicPusher'] and killed_copy.blessed is True
  assert killed_rename.interrupted == ['AtomicPusher'] and killed_rename.blessed is True
  assert finished.interrupted == [] and finished.failed == []
  assert finished.pushed_version == str(version)
  assert killed_copy.model_id == killed_rename.model_id == finished.model_id is not None
  version_dir = os.path.join(serving_dir, str(version))
  assert versioned_dir.push_record(version_dir)['model_id'] == finished.model_id
  model = tf.saved_model.load(version_dir)
  with open(sorted(glob.glob(os.path.join(runner.data, 'Test', 'COVID', '*.png')))[0], 'rb') as f:
    outputs = model.signatures['serving_default'](image_bytes=tf.constant([f.read()]))
  assert outputs['probabilities'].shape == (1, labels.NUM_CLASSES)

  _assert_console_of_a_run_with_cached_steps(runner.printed(), finished, runner.output)

  # `cxr history` marks the interrupted runs.
  table = history.format_table(history.read_history(runner.output)).splitlines()
  assert [line.split()[-1] for line in table] == [
    'interrupted',
    'Trainer',
    'AtomicPusher',
    'AtomicPusher',
    '-',
  ]
  assert cli.main(['history', '--output', runner.output, '--json']) == 0
  assert [r['interrupted'] for r in json.loads(capsys.readouterr().out)] == [
    ['Trainer'],
    ['AtomicPusher'],
    ['AtomicPusher'],
    [],
  ]
