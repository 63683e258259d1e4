"""A private temporary folder per run, under the output folder, removed when the run ends.

TFX's Beam executors build a ~49 MB package of TFX's source in a new temporary folder for every
Beam step (tfx.utils.dependency_utils.build_ephemeral_package, for remote workers), and Beam's
job server and stager add folders of their own; nothing removes them. A run points TMPDIR
(inherited by Beam's worker processes and the Prism job server) and Python's `tempfile` at
OUTPUT/.tmp and removes that folder when the run ends, whether it succeeded or failed. A folder
left by a killed run is removed by the next run: hold it under the run lock (pipeline/run_lock.py)
so that no live run owns it.
"""

import contextlib
import logging
import os
import shutil
import tempfile
from typing import Iterator

TEMP_DIR = '.tmp'


@contextlib.contextmanager
def hold(output_dir: str) -> Iterator[str]:
  """Points TMPDIR and `tempfile` at a fresh OUTPUT/.tmp for the `with` block; yields its path.

  A remote output folder (gs://) gets a local `tempfile.mkdtemp()` folder instead.
  """
  if '://' in output_dir:
    path = tempfile.mkdtemp(prefix='cxr-run-')
  else:
    path = os.path.join(os.path.abspath(output_dir), TEMP_DIR)
    if os.path.exists(path):
      logging.info('Removing %s left by an interrupted run', path)
      shutil.rmtree(path)
    os.makedirs(path)
  saved_environ, saved_tempdir = os.environ.get('TMPDIR'), tempfile.tempdir
  os.environ['TMPDIR'] = tempfile.tempdir = path
  try:
    yield path
  finally:
    tempfile.tempdir = saved_tempdir
    if saved_environ is None:
      os.environ.pop('TMPDIR', None)
    else:
      os.environ['TMPDIR'] = saved_environ
    shutil.rmtree(path, ignore_errors=True)
