"""A progress line when each pipeline step starts and one when it ends: ran or cached, seconds and
its key figure (pipeline/step_figures.py), under both TFX runners.

The hook: LocalDagRunner and BeamDagRunner both create a `tfx.orchestration.portable.launcher.
Launcher` per node (looked up in that module when the node starts) and call its `launch()`, which
resolves the inputs, checks the cache and runs the executor; it returns the execution's info
(its id: ML Metadata then says COMPLETE or CACHED) or raises the executor's error. `reporting` puts
a subclass in the module for the `with` block. The alternative, a logging filter on the runners'
'Component %s is running.' / 'node %s is running.' records, would hang on the wording of each
runner's log lines and would still need ML Metadata to tell a cached step from one that ran.
A step that prints nothing for a while (QUIET_SECONDS, or longer than its own progress lines keep
it quiet: the Trainer's epochs) gets a line saying it is still running.
"""

import contextlib
import itertools
import logging
import time
from typing import Iterator, Optional

from tfx.orchestration import metadata
from tfx.orchestration.portable import data_types
from tfx.orchestration.portable import launcher

from components import progress
from pipeline import history
from pipeline import step_figures

QUIET_SECONDS = 60
_RUNNING = '%s: running for %s'


@contextlib.contextmanager
def _still_running_lines(label: str) -> Iterator[None]:
  """Logs that the step is still running when it printed nothing for QUIET_SECONDS, or for one and
  a half times the longest wait between its own progress lines (the epochs), if longer."""
  last_line, last_own_line, longest_wait = time.monotonic(), None, 0.0

  def note(record: logging.LogRecord) -> bool:
    nonlocal last_line, last_own_line, longest_wait
    last_line = time.monotonic()
    if record.msg != _RUNNING:
      if last_own_line is not None:  # the first one's wait includes the step's set-up
        longest_wait = max(longest_wait, last_line - last_own_line)
      last_own_line = last_line
    return True

  def check(seconds: float) -> None:
    if time.monotonic() - last_line >= max(QUIET_SECONDS, 1.5 * longest_wait):
      progress.logger.info(_RUNNING, label, progress.duration(seconds))

  progress.logger.addFilter(note)
  try:
    with progress.every(QUIET_SECONDS / 4, check):
      yield
  finally:
    progress.logger.removeFilter(note)


def _end_line(
  label: str,
  node: str,
  mlmd_connection: metadata.Metadata,
  info: Optional[data_types.ExecutionInfo],
  seconds: float,
) -> None:
  if info is None or info.execution_id is None:
    progress.logger.info(
      '%s: skipped, its inputs are missing (%s)', label, progress.duration(seconds)
    )
    return
  with mlmd_connection as m:
    [execution] = m.store.get_executions_by_id([info.execution_id])
    state = history.STATES.get(execution.last_known_state, 'ended')
    try:
      figure = step_figures.figure(m.store, node, execution.id)
    except Exception as e:  # the figure is for the person watching: the run goes on without it
      logging.warning('Cannot read the key figure of %s: %r', node, e)
      figure = None
  line = f'{label}: {state}, {progress.duration(seconds)}'
  if figure:
    line += f'; {figure.text}'
    if figure.images and state == 'ran':
      line += f'; {figure.images / seconds:.1f} images/s'
  progress.logger.info(line)
  if figure:
    for detail in figure.details:
      progress.logger.info('%s', detail)
    for warning in figure.warnings:
      logging.warning('%s', warning)


@contextlib.contextmanager
def reporting(steps: int) -> Iterator[None]:
  """Each node launched in the `with` block logs its start and end lines, numbered 1..`steps`."""
  original = launcher.Launcher
  numbers = itertools.count(1)

  class StepLinesLauncher(original):
    def __init__(self, pipeline_node, mlmd_connection, **kwargs):
      super().__init__(pipeline_node=pipeline_node, mlmd_connection=mlmd_connection, **kwargs)
      self._node_id = pipeline_node.node_info.id
      self._connection = mlmd_connection

    def launch(self) -> Optional[data_types.ExecutionInfo]:
      label = f'[{next(numbers):>2}/{steps}] {self._node_id}'
      progress.logger.info('%s: started', label)
      start = time.monotonic()
      try:
        with _still_running_lines(label):
          info = super().launch()
      except BaseException:
        progress.logger.error(
          '%s: failed after %s', label, progress.duration(time.monotonic() - start)
        )
        raise
      _end_line(label, self._node_id, self._connection, info, time.monotonic() - start)
      return info

  launcher.Launcher = StepLinesLauncher
  try:
    yield
  finally:
    launcher.Launcher = original
