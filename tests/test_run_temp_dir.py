"""Per-run temporary folder: what a run's steps put in the temp folder goes when the run ends."""

import os
import tempfile

import pytest

from pipeline import history
from pipeline import local_runner
from pipeline import run_temp_dir
from pipeline.run_options import RunOptions


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
  """The temp folder the run would otherwise litter (TMPDIR and Python's tempfile)."""
  folder = tmp_path / 'tmp'
  folder.mkdir()
  monkeypatch.setenv('TMPDIR', str(folder))
  monkeypatch.setattr(tempfile, 'tempdir', str(folder))
  return str(folder)


def test_a_failed_run_leaves_nothing_in_the_temp_folder(tmp_path, private_tmp):
  # The ingestion step's Beam executor builds TFX's ~49 MB dependency package in a temp folder,
  # then fails on a class folder without images.
  data = tmp_path / 'data' / 'COVID'
  data.mkdir(parents=True)
  (data / 'notes.txt').write_text('no images here')
  output = tmp_path / 'output'
  with pytest.raises(ValueError, match='No image files found under'):
    local_runner.run(RunOptions(data_root=str(data.parent), output_dir=str(output)))
  assert history.read_history(str(output))[-1].failed == ['ImageFolderExampleGen']
  assert os.listdir(private_tmp) == []
  assert not os.path.exists(output / run_temp_dir.TEMP_DIR)
  assert os.environ['TMPDIR'] == private_tmp and tempfile.gettempdir() == private_tmp


def test_the_next_run_removes_what_a_killed_run_left(tmp_path, private_tmp):
  left = tmp_path / 'output' / run_temp_dir.TEMP_DIR / 'tmpabc' / 'build'
  left.mkdir(parents=True)
  with run_temp_dir.hold(str(tmp_path / 'output')) as path:
    assert os.listdir(path) == []
    assert os.environ['TMPDIR'] == path and tempfile.mkdtemp().startswith(path + os.sep)
  assert not os.path.exists(path)
  assert os.environ['TMPDIR'] == private_tmp and tempfile.gettempdir() == private_tmp
