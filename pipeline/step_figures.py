"""Each pipeline step's key figure, read from the outputs its execution recorded in ML Metadata.

A cached execution records the outputs it reused the same way, so a cached step shows the figure
of the run that made them. What `cxr run` prints when a step ends (pipeline/step_lines.py).
"""

import dataclasses
import os
from typing import Callable, Dict, Optional, Tuple

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
import tensorflow_data_validation as tfdv
from tensorflow_data_validation.utils import anomalies_util
from tfx.components.example_validator import executor as validator_executor
from tfx.components.transform import executor as transform_executor
from tfx.types import artifact_utils

from components import features
from components import training_report
from components.drift import result as drift_result
from components.evaluation import results
from components.ingestion import manifest
from components.ingestion.file_table import QUARANTINED
from pipeline import metadata_queries
from pipeline import pipeline as pipeline_lib
from pipeline import report_format
from pipeline import report_gate

Output = Callable[[str], Optional[metadata_store_pb2.Artifact]]  # output key -> artifact


@dataclasses.dataclass(frozen=True)
class Figure:
  """What a step's end line says, the lines under it and the warnings for the user."""

  text: str
  details: Tuple[str, ...] = ()
  warnings: Tuple[str, ...] = ()
  images: Optional[int] = None  # images the step went through, for a rate when it ran


def _ingestion(output: Output) -> Figure:
  report = output('report')
  summary = manifest.read_summary(report.uri)
  splits = ', '.join(f'{split} {counts["total"]}' for split, counts in summary['splits'].items())
  status = summary['status']
  warnings = ()
  if status[QUARANTINED]:
    reasons = summary['reasons'].get(QUARANTINED, {})
    warnings = (
      f'{status[QUARANTINED]} image files quarantined ('
      + ', '.join(f'{reason} {n}' for reason, n in reasons.items())
      + f'): listed in {os.path.join(report.uri, manifest.MANIFEST_FILE)} and the report',
    )
  return Figure(
    f'{manifest.accounting(summary)}; {splits}',
    warnings=warnings,
    images=summary['image_files'],
  )


def _validation(output: Output) -> Figure:
  anomalies = output('anomalies')
  found = []
  for split in artifact_utils.decode_split_names(anomalies.properties['split_names'].string_value):
    path = os.path.join(anomalies.uri, f'Split-{split}', validator_executor.DEFAULT_FILE_NAME)
    for name, info in sorted(anomalies_util.load_anomalies_binary(path).anomaly_info.items()):
      found.append(f'{split} {name}: {info.short_description}')
  if not found:
    return Figure('anomalies: none')
  return Figure(f'anomalies: {len(found)}', warnings=tuple(f'Anomaly in {a}' for a in found))


def _drift(output: Output) -> Figure:
  result = drift_result.read(output('report').uri)
  warnings = (f'Drift allowed (--allow-drift): {result.summary()}',) if result.allowed else ()
  return Figure(result.summary(), warnings=warnings)


def _transform(output: Output) -> Figure:
  path = os.path.join(output('post_transform_stats').uri, transform_executor.STATS_FILE)
  [dataset] = tfdv.load_stats_binary(path).datasets  # the transformed splits, together
  mean = next(f.num_stats for f in dataset.features if f.path.step == [features.PIXEL_MEAN_XF])
  # Every example holds the learned mean, the same value on every channel.
  return Figure(
    f'{dataset.num_examples} images (train + eval), learned mean {mean.mean:.4f}',
    images=dataset.num_examples,
  )


def _baseline(output: Output) -> Figure:
  model = output('model')
  return Figure(f'baseline model {model.id}' if model else 'no blessed model yet: no baseline')


def _trainer(output: Output) -> Figure:
  record = training_report.read_history(output('model_run').uri)
  best, history = record['best_epoch'], record['history']
  epochs = len(history['loss'])
  if not best:
    return Figure(f'{epochs} epochs, no finite val_loss: the last weights exported')
  metrics = ', '.join(f'{key} {history[key][best - 1]:.4f}' for key in ('val_loss', 'val_accuracy'))
  return Figure(f'best epoch {best}/{epochs} ({metrics})')


def _evaluator(output: Output) -> Figure:
  checks = results.load_gate(output('evaluation').uri)
  blessed = metadata_queries.custom_property(output('blessing'), 'blessed') == 1
  failed = ', '.join(report_format.check_name(c) for c in checks if not c.passed)
  return Figure(
    'BLESSED' if blessed else 'NOT BLESSED',
    details=tuple(f'  {report_gate.describe(c)}' for c in checks),
    warnings=() if blessed else (f'Model NOT BLESSED (failed: {failed}): it is not pushed',),
  )


def _pusher(output: Output) -> Figure:
  pushed = output('pushed_model')
  if not metadata_queries.custom_property(pushed, 'pushed'):
    return Figure('nothing pushed: the model is not blessed')
  return Figure(
    f'version {metadata_queries.custom_property(pushed, "pushed_version")} at '
    f'{metadata_queries.custom_property(pushed, "pushed_destination")}'
  )


_FIGURES: Dict[str, Callable[[Output], Figure]] = {
  pipeline_lib.INGESTION: _ingestion,
  pipeline_lib.VALIDATOR: _validation,
  pipeline_lib.DRIFT_CHECK: _drift,
  pipeline_lib.TRANSFORM: _transform,
  pipeline_lib.RESOLVER: _baseline,
  pipeline_lib.TRAINER: _trainer,
  pipeline_lib.EVALUATOR: _evaluator,
  pipeline_lib.PUSHER: _pusher,
}
# A resolver records what it found as INTERNAL_OUTPUT events, a component as OUTPUT events.
_EVENT = {pipeline_lib.RESOLVER: metadata_store_pb2.Event.INTERNAL_OUTPUT}


def figure(store: metadata_store.MetadataStore, node: str, execution_id: int) -> Optional[Figure]:
  """The key figure of the execution `execution_id` of step `node`, or None for a step without
  one (statistics, schema import, drift gate)."""
  describe = _FIGURES.get(node)
  if describe is None:
    return None
  event = _EVENT.get(node, metadata_store_pb2.Event.OUTPUT)
  return describe(lambda key: metadata_queries.execution_artifact(store, execution_id, key, event))
