"""The console of `cxr run`: progress lines and the user's warnings on it, everything else in the
run's log; a failing step's line, error and log path. (A whole run's console: test_fault_injection.)
"""

import glob
import logging
import os
import re
import subprocess
import sys
import time

from components import labels
from components import progress
from pipeline import cli
from pipeline import run_console
from pipeline import step_lines


def _record_of_our_code(level: int, message: str) -> logging.LogRecord:
  """A record as pipeline/ code logs it (the console tells its own code by the file)."""
  return logging.getLogger().makeRecord('root', level, step_lines.__file__, 1, message, None, None)


def test_the_console_gets_progress_and_our_warnings_and_the_log_everything_else(tmp_path, capfd):
  log = tmp_path / 'output' / 'logs' / 'run.log'
  with run_console.routed() as console:
    os.write(1, b'C++ on stdout\n')
    os.write(2, b'C++ on stderr\n')
    subprocess.run([sys.executable, '-c', 'print("a worker process")'], check=True)
    console.log_to(str(log))  # what came before is copied into it
    progress.logger.info('[ 1/11] Step: started')
    logging.getLogger().handle(_record_of_our_code(logging.WARNING, '3 files quarantined'))
    logging.getLogger('absl').warning('a library warning')
    logging.getLogger().handle(_record_of_our_code(logging.INFO, 'a detail of ours'))
    os.write(2, b'after the log moved\n')
  os.write(1, b'restored\n')
  out, err = capfd.readouterr()
  assert out == f'Log: {log}\n[ 1/11] Step: started\nrestored\n'
  assert err == 'WARNING: 3 files quarantined\n'
  text = log.read_text()
  for line in ('C++ on stdout', 'C++ on stderr', 'a worker process', 'after the log moved'):
    assert line in text.splitlines()


def test_verbose_puts_every_record_on_the_console(capfd):
  with run_console.routed(verbose=True):
    logging.getLogger('absl').warning('a library warning')
    os.write(2, b'C++ noise\n')
  out, err = capfd.readouterr()
  assert out == '' and re.fullmatch(r'\S+ \S+ WARNING absl: a library warning\n', err)


def test_a_failing_step_prints_its_line_the_error_and_the_log_path(tmp_path, capfd):
  """Ingestion of class folders that hold no image fails the first step, before any Beam work."""
  data = tmp_path / 'data'
  for name in labels.CLASS_NAMES:
    (data / name).mkdir(parents=True)
    (data / name / 'README.txt').write_text('the images are elsewhere')
  output = tmp_path / 'output'
  assert cli.main(['run', '--data', str(data), '--output', str(output)]) == 2
  out, err = capfd.readouterr()
  [log] = glob.glob(str(output / 'logs' / '*.log'))
  assert out.splitlines() == [f'Log: {log}', '[ 1/11] ImageFolderExampleGen: started']
  failed, log_line, error = err.splitlines()
  assert re.fullmatch(r'\[ 1/11\] ImageFolderExampleGen: failed after \d+ s', failed)
  assert log_line == f'Log: {log}'
  assert error == (
    f'cxr run: error: No image files found under {data} (3 other files); expected class folders '
    'of PNG/JPEG/BMP/TIFF images'
  )
  with open(log, encoding='utf-8') as f:
    text = f.read()
  assert 'Traceback (most recent call last)' in text and error[len('cxr run: error: ') :] in text


def test_a_quiet_step_says_it_still_runs_unless_its_own_lines_come_as_often(monkeypatch, caplog):
  """Scaled down: QUIET_SECONDS 0.5 s. Own lines 1 s apart (epochs) allow 1.5 s of quiet."""
  monkeypatch.setattr(step_lines, 'QUIET_SECONDS', 0.5)
  label = '[ 9/11] Trainer'

  def lines():
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(label)]

  with caplog.at_level('INFO', logger=progress.logger.name):
    with step_lines._still_running_lines(label):
      time.sleep(1.2)  # building the model: nothing of its own yet
      assert re.fullmatch(rf'{re.escape(label)}: running for \d s', lines()[0]), lines()
      for _ in range(2):
        progress.logger.info('  epoch ...')
        time.sleep(1.0)
      caplog.clear()
      time.sleep(0.3)  # 1.3 s after the last epoch: as quiet as between epochs
      assert lines() == []
      time.sleep(1.2)  # 2.5 s
      assert len(lines()) == 1
