"""One run at a time per output folder: an exclusive lock held for the whole run.

Two runs writing the same output folder at once could interleave executions in one metadata
store and resolve, bless and push against each other's half-finished models. `hold` takes an
exclusive `fcntl.flock` on OUTPUT/.run.lock for the whole run. A second run fails at once with
a message naming the holder (default: a scheduler that fires again while a run is still going
gets a clear error instead of a growing queue), or, with `wait_seconds`, waits that long first.
The kernel releases the lock when the holder exits, even on a crash: no stale lock to clean up.

The lock works between processes on one machine (and on NFS with working lockd). Output on a
remote filesystem (gs://) is not locked here: let the orchestrator allow a single active run
(Airflow `max_active_runs=1`, one KFP recurring run with `max_concurrency=1`).
"""

import contextlib
import datetime
import fcntl
import logging
import os
import socket
import time
from typing import Iterator

from pipeline import output_layout

LOCK_FILE = '.run.lock'


class OutputFolderBusy(RuntimeError):
  """Another run holds the output folder's lock."""


def _holder(lock_file) -> str:
  lock_file.seek(0)
  return lock_file.read().strip() or 'unknown process'


def _try_lock(lock_file) -> bool:
  try:
    fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return True
  except BlockingIOError:
    return False


@contextlib.contextmanager
def hold(output_dir: str, wait_seconds: float = 0.0, poll_seconds: float = 0.5) -> Iterator[None]:
  """Holds the run lock of `output_dir` for the `with` block.

  Raises:
    OutputFolderBusy: another run still holds the lock after `wait_seconds`.
    output_layout.OutputFolderUnusable: the folder cannot be created or written to.
  """
  if '://' in output_dir:
    logging.warning(
      'No run lock on remote output %s: the orchestrator must allow one run at a time', output_dir
    )
    yield
    return
  output_layout.prepare(output_dir)
  path = os.path.join(os.path.abspath(output_dir), LOCK_FILE)
  with open(path, 'a+', encoding='utf-8') as lock_file:
    deadline = time.monotonic() + wait_seconds
    if not _try_lock(lock_file):
      if wait_seconds > 0:
        logging.info(
          'Output folder %s is in use by %s; waiting up to %.0f s',
          output_dir,
          _holder(lock_file),
          wait_seconds,
        )
      while not _try_lock(lock_file):
        if time.monotonic() >= deadline:
          raise OutputFolderBusy(
            f'Output folder {os.path.abspath(output_dir)} is in use by another run '
            f'({_holder(lock_file)}; lock {path}). Wait for it to finish, choose another '
            '--output, or pass --lock-wait SECONDS to wait for it.'
          )
        time.sleep(poll_seconds)
    try:
      lock_file.seek(0)
      lock_file.truncate()
      lock_file.write(
        f'pid {os.getpid()} on {socket.gethostname()}, started '
        f'{datetime.datetime.now().isoformat(timespec="seconds")}'
      )
      lock_file.flush()
      yield
    finally:
      lock_file.seek(0)
      lock_file.truncate()
      fcntl.flock(lock_file, fcntl.LOCK_UN)


def is_held(output_dir: str) -> bool:
  """True while a run holds the lock of local `output_dir`.

  Takes and drops a shared lock without waiting: a run starting in that instant finds the
  folder busy, as it would if this were a run.
  """
  if '://' in output_dir:
    return False
  try:
    lock_file = open(os.path.join(os.path.abspath(output_dir), LOCK_FILE), encoding='utf-8')
  except FileNotFoundError:
    return False
  with lock_file:
    try:
      fcntl.flock(lock_file, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
      return True
    fcntl.flock(lock_file, fcntl.LOCK_UN)
    return False
