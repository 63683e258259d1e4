"""Serving folders `base/<version>/` published atomically (the layout TF Serving watches).

A model is copied into a hidden `base/.tmp-<version>` folder, flushed to disk, then renamed to
`base/<version>`: readers see either no version or the complete model, never a partial one.
Versions are integers, the push time in Unix seconds, bumped past the newest existing version so
they never collide and always increase. Earlier versions are kept. Temporary folders left by a
crashed push are removed by the next push (or remove_stale_temp_dirs). An exclusive lock
(`base/.lock`) serializes pushers.
Local filesystems only (the atomic rename is POSIX `rename(2)`).

Each version folder records which model it holds (`assets.extra/push_record.json`, written
before the rename, so it is there exactly when the version is): a push of the model the newest
version already holds copies nothing and returns that version, so a push killed after its rename
and then repeated publishes the model once. Files that describe a version (its model card) are
written into the temporary folder too, so a version never appears without them.
"""

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

TEMP_PREFIX = '.tmp-'
LOCK_FILE = '.lock'
# SavedModel's folder for files that are not part of the graph (TF Serving's warm-up data too).
PUSH_RECORD = os.path.join('assets.extra', 'push_record.json')


def versions(base_directory: str) -> List[int]:
  """Published versions in `base_directory`, oldest first (temporary folders excluded)."""
  if not os.path.isdir(base_directory):
    return []
  return sorted(
    int(name)
    for name in os.listdir(base_directory)
    if name.isdigit() and os.path.isdir(os.path.join(base_directory, name))
  )


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


def remove_stale_temp_dirs(base_directory: str) -> None:
  """Removes the temporary folders interrupted pushes left (publish does it too)."""
  if os.path.isdir(base_directory):
    with _locked(base_directory):
      _remove_stale_temp_dirs(base_directory)


def push_record(version_dir: str) -> Optional[Dict[str, Any]]:
  """The record of the model a version folder holds, or None (no record: not pushed by publish)."""
  try:
    with open(os.path.join(version_dir, PUSH_RECORD), encoding='utf-8') as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def _write_file(version_dir: str, name: str, content: bytes, mode: str = 'wb') -> None:
  """Writes `content` to version_dir/name and flushes it and its folder to disk."""
  path = os.path.join(version_dir, name)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, mode) as f:
    f.write(content)
    f.flush()
    os.fsync(f.fileno())
  _fsync(os.path.dirname(path))


def publish(
  model_dir: str,
  base_directory: str,
  record: Optional[Dict[str, Any]] = None,
  extra_files: Optional[Callable[[int], Mapping[str, bytes]]] = None,
) -> Tuple[int, str]:
  """Copies `model_dir` to a new version folder in `base_directory`; returns (version, path).

  `record` (JSON-serializable) names the model, e.g. its artifact id and URI. When the newest
  version already holds the model `record` names, nothing is copied and that version is
  returned. Only the newest counts: TF Serving serves the newest version, so a model held by an
  older one is published again as a new version.
  `extra_files(version)` gives files to add beside the model, {path relative to the version
  folder: content}, e.g. the version's model card; called only when a new version is published.
  A name the model already holds is refused (FileExistsError): the model's files are never
  replaced.
  """
  if '://' in base_directory:
    raise ValueError(f'Push destination must be a local folder, got {base_directory!r}')
  if not os.path.isdir(model_dir):
    raise FileNotFoundError(f'Model folder to push not found: {model_dir}')
  os.makedirs(base_directory, exist_ok=True)
  with _locked(base_directory):
    _remove_stale_temp_dirs(base_directory)
    found = versions(base_directory)
    newest_dir = os.path.join(base_directory, str(found[-1])) if found else None
    if record is not None and newest_dir and push_record(newest_dir) == record:
      logging.info(
        'Model %s is already published as version %d: nothing copied', model_dir, found[-1]
      )
      return found[-1], newest_dir
    version = _next_version(base_directory)
    temp_dir = os.path.join(base_directory, f'{TEMP_PREFIX}{version}')
    final_dir = os.path.join(base_directory, str(version))
    logging.info('Copying %s to %s', model_dir, temp_dir)
    try:
      _copy_tree(model_dir, temp_dir)
      if record is not None:
        _write_file(temp_dir, PUSH_RECORD, json.dumps(record, sort_keys=True).encode())
      for name, content in (extra_files(version) if extra_files else {}).items():
        _write_file(temp_dir, name, content, mode='xb')
      os.rename(temp_dir, final_dir)
    except BaseException:
      shutil.rmtree(temp_dir, ignore_errors=True)
      raise
    _fsync(base_directory)
  logging.info('Published model version %d at %s', version, final_dir)
  return version, final_dir
