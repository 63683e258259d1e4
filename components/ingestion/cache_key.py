"""The input_config of ImageFolderExampleGen: the files TFX's ExampleGen driver fingerprints.

The driver (FileBasedDriver under the local runners, the `preCacheCheck` hook on Kubeflow v2)
runs before the cache lookup: it globs each split pattern under input_base and records the number,
total size and modification seconds of the matches as the execution's `input_fingerprint`, part
of the cache key. The executor reads no pattern: discovery.py finds the files to ingest.

Globs do not recurse, so there is one pattern per depth, matching files and folders, down to
MAX_DEPTH, deeper than every layout of discovery.py (span/wrapper/Train/source/class/images/file
is 7). A file below MAX_DEPTH is not fingerprinted, though adding or removing one changes the
modification time of its folder at MAX_DEPTH on a local disk. The patterns cover every span
folder, so a change to a span that `span_selection` leaves out re-runs ingestion as well. Times
are whole seconds: a file rewritten within the second with the same size goes unnoticed.
"""

import os

from tfx.proto import example_gen_pb2

MAX_DEPTH = 8


def _csv_pattern(input_base: str, metadata_csv: str) -> str:
  """The CSV's absolute local path (the driver joins a pattern to input_base with os.path.join,
  which keeps an absolute one), else its path relative to input_base."""
  if '://' not in metadata_csv:
    return os.path.abspath(metadata_csv)
  base = input_base.rstrip('/') + '/'
  if not metadata_csv.startswith(base):
    raise ValueError(
      f'metadata_csv {metadata_csv!r} must be a local file or lie inside the data folder '
      f'{input_base!r}: the cache key covers only files the ExampleGen driver can find'
    )
  return metadata_csv[len(base) :]


def input_config(input_base: str, metadata_csv: str = '') -> example_gen_pb2.Input:
  """A split per depth 1..MAX_DEPTH under input_base ('*', '*/*', ...), and one for the metadata
  CSV if any."""
  splits = [
    example_gen_pb2.Input.Split(name=f'depth-{depth}', pattern='/'.join(['*'] * depth))
    for depth in range(1, MAX_DEPTH + 1)
  ]
  if metadata_csv:
    pattern = _csv_pattern(input_base, metadata_csv)
    splits.append(example_gen_pb2.Input.Split(name='metadata_csv', pattern=pattern))
  return example_gen_pb2.Input(splits=splits)
