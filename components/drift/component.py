"""DriftCheck records a span's drift from the last accepted earlier span; DriftGate stops the run
on it.

Two nodes, so that a stopped run still has its result in ML Metadata (`cxr history`): a failed
execution publishes no artifact.
"""

import dataclasses
import os

import tensorflow as tf
import tensorflow_data_validation as tfdv
from tfx import v1 as tfx
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.types import artifact
from tfx.types import standard_artifacts

from components.drift import check
from components.drift import reference
from components.drift import result as result_lib
from components.drift.options import DriftOptions

_DEFAULTS = DriftOptions().to_config()


class SpanDrifted(ValueError):
  """The span drifted from the previous one and drift is not allowed."""


class DriftReport(artifact.Artifact):
  """A span's drift check: `drift.json` (result.DriftResult) and custom properties `span`,
  `previous_span` (-1: none), `drifted` (the drifted features, comma-separated), `accepted` (1 or
  0) and `summary` (one line)."""

  TYPE_NAME = 'cxr.DriftReport'  # KFP v2 needs namespaced custom types


@tfx.dsl.components.component
def DriftCheck(
  statistics: tfx.dsl.components.InputArtifact[standard_artifacts.ExampleStatistics],
  schema: tfx.dsl.components.InputArtifact[standard_artifacts.Schema],
  report: tfx.dsl.components.OutputArtifact[DriftReport],
  reference_dir: tfx.dsl.components.Parameter[str],
  allow_drift: tfx.dsl.components.Parameter[bool] = _DEFAULTS['allow_drift'],
) -> None:
  """Compares the span's train-split statistics with the last accepted earlier span's (see
  components.drift.reference, under `reference_dir`); an accepted span becomes the reference.

  `allow_drift` is DriftOptions.to_config(): pass `**options.to_config()`.
  """
  options = DriftOptions.from_config(dict(allow_drift=allow_drift))
  span = statistics.span
  current = stats_artifact_utils.load_statistics(statistics, result_lib.SPLIT).proto()
  found = reference.previous(reference_dir, span)
  if found is None:
    result = result_lib.first_span(span)
  else:
    previous_span, previous = found
    schema_proto = tfdv.load_schema_text(os.path.join(schema.uri, 'schema.pbtxt'))
    result = check.compare(current, previous, schema_proto, span, previous_span)
    result = dataclasses.replace(result, allowed=bool(result.drifted) and options.allow_drift)
  if result.accepted:
    reference.store(reference_dir, span, current)
  with tf.io.gfile.GFile(os.path.join(report.uri, result_lib.RESULT_FILE), 'w') as f:
    f.write(result.to_json())
  report.set_int_custom_property('span', span)
  report.set_int_custom_property(
    'previous_span', -1 if result.previous_span is None else result.previous_span
  )
  report.set_string_custom_property('drifted', ','.join(d.feature for d in result.drifted))
  report.set_int_custom_property('accepted', int(result.accepted))
  report.set_string_custom_property('summary', result.summary())


@tfx.dsl.components.component
def DriftGate(report: tfx.dsl.components.InputArtifact[DriftReport]) -> None:
  """Raises SpanDrifted (one line: each drifted feature, its distance and threshold) unless the
  DriftCheck accepted the span."""
  if not report.get_int_custom_property('accepted'):
    raise SpanDrifted(report.get_string_custom_property('summary'))
