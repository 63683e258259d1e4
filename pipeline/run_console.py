"""What `cxr run` prints: its progress lines and the user's warnings; everything else in a log file.

TFX, Beam, TensorFlow and absl print thousands of lines per run (Beam worker INFO, protobuf dumps
of the deployment config, C++ start-up errors, FutureWarnings), from Python, from C++ and from
Beam's worker processes. `routed` points the process's file descriptors 1 and 2 at a file
(os.dup2), so all of it lands there, children's output and a crash's last words included, and
keeps the original descriptors for the console. Python logging: the root logger's handler (stderr,
`cli.main`) now writes into the file; the console gets the records of components.progress (the
steps, epochs, images per second) and the warnings and errors of this project's own code, or,
with `verbose`, every record (the C++ and worker output stays in the file).

Until the run holds its output folder (the run lock), the file is an anonymous temporary file:
nothing may be created in the output folder before the checks pass. `Console.log_to` then copies
it into OUTPUT/logs/<run id>.log and goes on there; the path is printed then and at the end.
"""

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import traceback
from typing import BinaryIO, Iterator, List, Optional, TextIO

import components
from components import progress

# This project's code, whose warnings and errors matter to the user.
_OWN_CODE = tuple(
  os.path.dirname(os.path.abspath(path)) + os.sep for path in (components.__file__, __file__)
)
VERBOSE_FORMAT = '%(asctime)s %(levelname)s %(name)s: %(message)s'


def _is_progress(record: logging.LogRecord) -> bool:
  return record.name == progress.logger.name


def from_own_code(record: logging.LogRecord) -> bool:
  """Logged by this project's code (components/, pipeline/), not by TFX, Beam, TensorFlow..."""
  return record.pathname.startswith(_OWN_CODE)


def _for_the_user(record: logging.LogRecord) -> bool:
  """A progress line, or a warning or error of this project's code."""
  return _is_progress(record) or (record.levelno >= logging.WARNING and from_own_code(record))


class _ConsoleFormatter(logging.Formatter):
  """A progress line as it is; a warning or error with its level, e.g. 'WARNING: ...'."""

  def format(self, record: logging.LogRecord) -> str:
    text = super().format(record)
    return text if _is_progress(record) else f'{record.levelname}: {text}'


def _handler(stream: TextIO, level: int, only, formatter: logging.Formatter) -> logging.Handler:
  handler = logging.StreamHandler(stream)
  handler.setLevel(level)
  handler.addFilter(only)
  handler.setFormatter(formatter)
  return handler


class Console:
  """The console of a routed process (the saved descriptors 1 and 2) and its log file."""

  def __init__(self, out: TextIO, err: TextIO, buffer: BinaryIO):
    self.out, self.err = out, err
    self.log_path: Optional[str] = None
    self._file = buffer

  def print(self, text: str, error: bool = False) -> None:
    print(text, file=self.err if error else self.out)

  def log_to(self, path: str) -> None:
    """Moves the log into `path` (appended to), with what was written so far; prints the path."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    _flush_std_streams()
    log = open(path, 'ab')  # O_APPEND: child processes write into it too
    self._file.seek(0)
    shutil.copyfileobj(self._file, log)
    log.flush()
    _point_std_fds_at(log.fileno())
    self._file.close()
    self._file, self.log_path = log, path
    self.print(f'Log: {path}')

  def write_log(self, text: str) -> None:
    os.write(self.log_fd(), text.encode())  # at the end, as descriptors 1 and 2 write

  def log_fd(self) -> int:
    return self._file.fileno()

  def close(self) -> None:
    self._file.close()
    for stream in (self.out, self.err):
      stream.close()

  def handlers(self, verbose: bool) -> List[logging.Handler]:
    if verbose:
      return [_handler(self.err, logging.DEBUG, lambda r: True, logging.Formatter(VERBOSE_FORMAT))]
    return [
      _handler(
        self.out,
        logging.INFO,
        lambda r: _is_progress(r) and r.levelno < logging.WARNING,
        logging.Formatter('%(message)s'),
      ),
      _handler(self.err, logging.WARNING, _for_the_user, _ConsoleFormatter('%(message)s')),
    ]


def _flush_std_streams() -> None:
  for stream in (sys.stdout, sys.stderr):
    stream.flush()


def _point_std_fds_at(fd: int) -> None:
  for std_fd in (1, 2):
    os.dup2(fd, std_fd)


@contextlib.contextmanager
def routed(verbose: bool = False) -> Iterator[Console]:
  """Descriptors 1 and 2 into a (first temporary) log file, the console as described above, for
  the `with` block; on an exception, its traceback goes to the log and the log's path to the
  console. Everything is restored at the end, also on error."""
  _flush_std_streams()
  saved = [os.dup(1), os.dup(2)]
  console = Console(
    *(open(os.dup(fd), 'w', buffering=1, encoding='utf-8') for fd in saved),
    tempfile.TemporaryFile(),
  )
  _point_std_fds_at(console.log_fd())
  root = logging.getLogger()
  handlers = console.handlers(verbose)
  for handler in handlers:
    root.addHandler(handler)
  progress_level = progress.logger.level
  progress.logger.setLevel(logging.INFO)  # the console's lines, whatever the root logger's level
  try:
    yield console
  except BaseException:
    console.write_log(traceback.format_exc())
    if console.log_path:
      console.print(f'Log: {console.log_path}', error=True)
    raise
  finally:
    progress.logger.setLevel(progress_level)
    for handler in handlers:
      root.removeHandler(handler)
    _flush_std_streams()
    console.close()
    for std_fd, fd in enumerate(saved, 1):
      os.dup2(fd, std_fd)
      os.close(fd)
