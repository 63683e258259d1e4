"""Compares the statistics of two spans with TFDV's drift comparators, thresholds from the schema.

TFDV 1.16's validate_statistics lists every compared feature's distance and threshold in
`drift_skew_info`, and names those over their threshold in `anomaly_info` (COMPARATOR_*_HIGH).
"""

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_metadata.proto.v0 import statistics_pb2

from components import features
from components.drift.result import Distance
from components.drift.result import DriftResult

_MEASURE = anomalies_pb2.DriftSkewInfo.Measurement
_MEASURES = {_MEASURE.L_INFTY: 'L-infinity', _MEASURE.JENSEN_SHANNON_DIVERGENCE: 'Jensen-Shannon'}
_DRIFT_REASONS = {
  anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH,
  anomalies_pb2.AnomalyInfo.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH,
}


def _only_source(statistics: statistics_pb2.DatasetFeatureStatisticsList, value: str) -> bool:
  """Whether every example's source is `value`."""
  stats = tfdv.get_feature_stats(
    statistics.datasets[0], tfdv.FeaturePath([features.SOURCE_KEY])
  ).string_stats
  return stats.unique == 1 and stats.top_values[0].value == value


def compare(
  current: statistics_pb2.DatasetFeatureStatisticsList,
  previous: statistics_pb2.DatasetFeatureStatisticsList,
  schema: schema_pb2.Schema,
  span: int,
  previous_span: int,
) -> DriftResult:
  """The drift of `current` (span `span`) from `previous`, by the schema's drift comparators.

  A span without source folders has its folder name as the source of every image ('span-N'),
  which differs between any two spans: the source is then compared only when one of the spans
  names real sources.
  """
  compared = schema_pb2.Schema()
  compared.CopyFrom(schema)
  note = ''
  if _only_source(current, f'span-{span}') and _only_source(previous, f'span-{previous_span}'):
    source = tfdv.get_feature(compared, features.SOURCE_KEY)
    if source.HasField('drift_comparator'):
      source.ClearField('drift_comparator')
      note = 'source not compared: both spans name their span folder as the source'
  anomalies = tfdv.validate_statistics(current, compared, previous_statistics=previous)
  drifted = {
    name
    for name, info in anomalies.anomaly_info.items()
    if any(reason.type in _DRIFT_REASONS for reason in info.reason)
  }
  distances = []
  for info in anomalies.drift_skew_info:
    feature = '.'.join(info.path.step)
    for m in info.drift_measurements:
      distances.append(
        Distance(feature, _MEASURES[m.type], m.value, m.threshold, feature in drifted)
      )
  return DriftResult(span, previous_span, tuple(distances), note=note)
