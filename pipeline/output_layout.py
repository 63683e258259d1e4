"""Where a run writes: one output folder holds the pipeline root, the metadata store and the
models."""

import dataclasses
import os
import re

PATIENT_SALT = 'patient_salt'


class OutputFolderUnusable(Exception):
  """The output folder cannot be created or written to."""


@dataclasses.dataclass(frozen=True)
class OutputLayout:
  """Paths inside an output folder (`cxr run --output DIR`)."""

  root: str

  @property
  def pipeline_root(self) -> str:
    return os.path.join(self.root, 'pipeline_root')

  @property
  def metadata_path(self) -> str:
    return os.path.join(self.root, 'metadata.sqlite')

  @property
  def serving_dir(self) -> str:
    """Pushed models, one folder per version: serving/<version>/."""
    return os.path.join(self.root, 'serving')

  @property
  def drift_reference_dir(self) -> str:
    """The accepted spans' statistics the drift check compares with: drift_reference/span-N/."""
    return os.path.join(self.root, 'drift_reference')

  @property
  def patient_salt(self) -> str:
    """The secret salt of the patient hashes (ingestion creates it): outside every artifact."""
    return os.path.join(self.root, PATIENT_SALT)

  @property
  def reports_dir(self) -> str:
    return os.path.join(self.root, 'reports')

  def report_dir(self, run_id: str) -> str:
    """A run's report: reports/<run id>/."""
    return os.path.join(self.reports_dir, _file_name(run_id))

  def log_path(self, run_id: str) -> str:
    """What a `cxr run` process printed and logged besides its console lines: logs/<run id>.log."""
    return os.path.join(self.root, 'logs', f'{_file_name(run_id)}.log')


def _file_name(run_id: str) -> str:
  """A run id as a file name (':' of the time stamps and any other odd character as '_')."""
  return re.sub(r'[^A-Za-z0-9._-]', '_', run_id)


def layout(output_dir: str) -> OutputLayout:
  return OutputLayout(os.path.abspath(output_dir))


def prepare(output_dir: str) -> None:
  """Creates the local output folder `output_dir` if needed and checks that it can be written to.

  Raises:
    OutputFolderUnusable: a file is in the way, or the file system is read-only or not ours.
  """
  try:
    os.makedirs(output_dir, exist_ok=True)
  except FileExistsError as e:
    raise OutputFolderUnusable(
      f'--output {output_dir} is a file, not a folder: give a folder (it is created if missing)'
    ) from e
  except OSError as e:
    raise OutputFolderUnusable(
      f'Cannot create the output folder {output_dir}: {e.strerror}. Choose a writable --output.'
    ) from e
  if not os.access(output_dir, os.W_OK | os.X_OK):
    read_only = os.statvfs(output_dir).f_flag & os.ST_RDONLY
    raise OutputFolderUnusable(
      f'Cannot write to the output folder {output_dir}: '
      f'{"Read-only file system" if read_only else "Permission denied"}. '
      'Choose a writable --output.'
    )
