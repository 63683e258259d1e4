"""Serving folders `base/<version>/` published atomically (the layout TF Serving watches).

A model is copied into a hidden `base/.tmp-<version>` folder, flushed to disk, then renamed to
`base/<version>`: readers see either no version or the complete model, never a partial one.
Versions are integers, the push time in Unix seconds, bumped past the newest existing version so
they never collide and always increase. Earlier versions are kept. Temporary folders left by a
crashed push are removed by the next push. An exclusive lock (`base/.lock`) serializes pushers.
Local filesystems only (the atomic rename is POSIX `rename(2)`).
"""
import contextlib
import fcntl
import logging
import os
import shutil
import time
from typing import Iterator, List, Optional, Tuple

TEMP_PREFIX = '.tmp-'
LOCK_FILE = '.lock'


def versions(base_directory: str) -> List[int]:
  """Published versions in `base_directory`, oldest first (temporary folders excluded)."""
  if not os.path.isdir(base_directory):
    return []
  return sorted(int(name) for name in os.listdir(base_directory)
                if name.isdigit() and os.path.isdir(os.path.join(base_directory, name)))


def latest_version_dir(base_directory: str) -> Optional[str]:
  """The newest published version's folder, or None when nothing was published."""
  found = versions(base_directory)
  return os.path.join(base_directory, str(found[-1])) if found else None


def version_dirs(base_directory: str) -> List[str]:
  """Published version folders, newest first: a reader that finds the newest one unusable (e.g.
  copied in by hand, half-copied) takes the next."""
  return [os.path.join(base_directory, str(v)) for v in reversed(versions(base_directory))]


def _next_version(base_directory: str) -> int:
  found = versions(base_directory)
  return max(int(time.time()), found[-1] + 1 if found else 0)


def _fsync(path: str) -> None:
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)


def _copy_file(src: str, dst: str) -> str:
  """Copies one file and flushes it to disk (shutil.copytree's copy_function)."""
  shutil.copyfile(src, dst)
  _fsync(dst)
  return dst


def _copy_tree(src: str, dst: str) -> None:
  shutil.copytree(src, dst, copy_function=_copy_file)
  for folder, _, _ in os.walk(dst, topdown=False):
    _fsync(folder)


@contextlib.contextmanager
def _locked(base_directory: str) -> Iterator[None]:
  with open(os.path.join(base_directory, LOCK_FILE), 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)


def _remove_stale_temp_dirs(base_directory: str) -> None:
  for name in os.listdir(base_directory):
    if name.startswith(TEMP_PREFIX):
      logging.warning('Removing %s left by an interrupted push', os.path.join(base_directory, name))
      shutil.rmtree(os.path.join(base_directory, name))


def publish(model_dir: str, base_directory: str) -> Tuple[int, str]:
  """Copies `model_dir` to a new version folder in `base_directory`; returns (version, path)."""
  if '://' in base_directory:
    raise ValueError(f'Push destination must be a local folder, got {base_directory!r}')
  if not os.path.isdir(model_dir):
    raise FileNotFoundError(f'Model folder to push not found: {model_dir}')
  os.makedirs(base_directory, exist_ok=True)
  with _locked(base_directory):
    _remove_stale_temp_dirs(base_directory)
    version = _next_version(base_directory)
    temp_dir = os.path.join(base_directory, f'{TEMP_PREFIX}{version}')
    final_dir = os.path.join(base_directory, str(version))
    logging.info('Copying %s to %s', model_dir, temp_dir)
    try:
      _copy_tree(model_dir, temp_dir)
      os.rename(temp_dir, final_dir)
    except BaseException:
      shutil.rmtree(temp_dir, ignore_errors=True)
      raise
    _fsync(base_directory)
  logging.info('Published model version %d at %s', version, final_dir)
  return version, final_dir
