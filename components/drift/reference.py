"""The statistics of every accepted span, the references later spans are compared with.

REFERENCE_DIR/span-N/FeatureStats.pb holds span N's train-split statistics
(DatasetFeatureStatisticsList), written when the span passes the drift check or drift is allowed.
A folder outside the pipeline root, like the served models: a span stopped for drift never becomes
a reference, so the next span is compared with the last span trained on. Local or gs:// paths.
Why not ML Metadata through a Resolver: TFX 1.16's Kubeflow v2 compiler takes only
LatestArtifactStrategy (one artifact) and LatestBlessedModelStrategy, and LatestArtifactStrategy
fails its resolver node when the store holds no such artifact yet (the first run); resolver
functions do not compile for Kubeflow v2. TFX caches DriftCheck on its inputs (statistics, schema,
settings), so a re-run of a span reuses its verdict.
"""

import os
import re
from typing import Optional, Tuple

import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import statistics_pb2

_SPAN = re.compile(r'span-(\d+)')
_FILE = 'FeatureStats.pb'


def store(
  reference_dir: str, span: int, statistics: statistics_pb2.DatasetFeatureStatisticsList
) -> None:
  """Records `statistics` as span `span`'s reference (replacing an earlier one), atomically."""
  folder = os.path.join(reference_dir, f'span-{span}')
  tf.io.gfile.makedirs(folder)
  temp = os.path.join(folder, f'.{_FILE}.tmp')
  with tf.io.gfile.GFile(temp, 'wb') as f:
    f.write(statistics.SerializeToString())
  tf.io.gfile.rename(temp, os.path.join(folder, _FILE), overwrite=True)


def previous(
  reference_dir: str, span: int
) -> Optional[Tuple[int, statistics_pb2.DatasetFeatureStatisticsList]]:
  """(span, statistics) of the latest accepted span before `span`, or None."""
  if not tf.io.gfile.isdir(reference_dir):
    return None
  spans = [
    int(m.group(1))
    for name in tf.io.gfile.listdir(reference_dir)
    if (m := _SPAN.fullmatch(name.rstrip('/')))
    and tf.io.gfile.exists(os.path.join(reference_dir, m.group(0), _FILE))
  ]
  earlier = [s for s in spans if s < span]
  if not earlier:
    return None
  found = max(earlier)
  return found, tfdv.load_stats_binary(os.path.join(reference_dir, f'span-{found}', _FILE))
