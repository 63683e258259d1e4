"""Progress lines a person follows during a run: epochs, images per second, steps.

They are the records of one logger, `cxr.progress`: `cxr run` shows them on the console and sends
every other record to the run's log file (pipeline/run_console.py).
"""

import contextlib
import logging
import threading
import time
from typing import Callable, Iterator

logger = logging.getLogger('cxr.progress')


def duration(seconds: float) -> str:
  """'42 s', '3 min 5 s', '1 h 2 min'."""
  seconds = round(seconds)
  if seconds < 60:
    return f'{seconds} s'
  if seconds < 3600:
    return f'{seconds // 60} min {seconds % 60} s'
  return f'{seconds // 3600} h {seconds % 3600 // 60} min'


@contextlib.contextmanager
def every(seconds: float, report: Callable[[float], None]) -> Iterator[None]:
  """Calls report(seconds elapsed) every `seconds` while the block runs, from a daemon thread.

  For work that runs out of this process's sight (Beam workers) and can only be watched.
  """
  stop = threading.Event()
  start = time.monotonic()

  def loop() -> None:
    while not stop.wait(seconds):
      report(time.monotonic() - start)

  thread = threading.Thread(target=loop, name='progress', daemon=True)
  thread.start()
  try:
    yield
  finally:
    stop.set()
    thread.join()
