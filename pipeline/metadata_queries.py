"""Reads a pipeline's runs and artifacts back from its ML Metadata store."""

import contextlib
import os
from typing import Iterator, List, Optional, Tuple

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from pipeline import metadata_config
from pipeline.output_layout import OutputLayout


@contextlib.contextmanager
def open_store(
  paths: OutputLayout,
  connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
) -> Iterator[metadata_store.MetadataStore]:
  """The metadata store of an output folder: its SQLite file (read only: it must exist and be
  intact, else ValueError), or `connection_config` (e.g. a MySQL server) when given."""
  if connection_config is None:
    if not os.path.exists(paths.metadata_path):
      raise FileNotFoundError(
        f'No metadata store at {paths.metadata_path}: is {paths.root} the '
        'output folder of `cxr run`? (For a MySQL store pass '
        '--metadata-mysql.)'
      )
    metadata_config.check_sqlite_store(paths.metadata_path)
    connection_config = tfx.orchestration.metadata.sqlite_metadata_connection_config(
      paths.metadata_path
    )
    connection_config.sqlite.connection_mode = (
      metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    )
  yield metadata_store.MetadataStore(connection_config)


def run_ids(store: metadata_store.MetadataStore) -> List[str]:
  """Pipeline run ids, oldest first."""
  runs = store.get_contexts_by_type('pipeline_run')
  return [c.name for c in sorted(runs, key=lambda c: (c.create_time_since_epoch, c.id))]


def _run_context(store: metadata_store.MetadataStore, run_id: str) -> metadata_store_pb2.Context:
  context = store.get_context_by_type_and_name('pipeline_run', run_id)
  if context is None:
    raise ValueError(f'No pipeline run {run_id!r} in the metadata store')
  return context


def artifacts_of_run(
  store: metadata_store.MetadataStore,
  run_id: str,
  type_name: str,
) -> List[metadata_store_pb2.Artifact]:
  """Artifacts of a type that executions of run `run_id` produced or reused (cached)."""
  context = _run_context(store, run_id)
  return [
    a
    for a in store.get_artifacts_by_context(context.id)
    if store.get_artifact_types_by_id([a.type_id])[0].name == type_name
  ]


def latest_artifact(
  store: metadata_store.MetadataStore,
  run_id: str,
  type_name: str,
) -> Optional[metadata_store_pb2.Artifact]:
  found = artifacts_of_run(store, run_id, type_name)
  return max(found, key=lambda a: a.id) if found else None


def custom_property(artifact: metadata_store_pb2.Artifact, name: str):
  """A custom property's value (int, float or string), or None."""
  if name not in artifact.custom_properties:
    return None
  value = artifact.custom_properties[name]
  return getattr(value, value.WhichOneof('value'))


def node_executions(
  store: metadata_store.MetadataStore,
  run_id: str,
) -> List[Tuple[str, metadata_store_pb2.Execution]]:
  """(node id, execution) of every component execution of run `run_id`, oldest first.

  `execution.last_known_state` tells COMPLETE (ran), CACHED (reused an earlier result), FAILED,
  or RUNNING / NEW (still running, or left so by a killed run: TFX never revisits it).
  """
  node_type = store.get_context_type('node')
  found = []
  for execution in store.get_executions_by_context(_run_context(store, run_id).id):
    node = next(
      c for c in store.get_contexts_by_execution(execution.id) if c.type_id == node_type.id
    )
    found.append((node.name.split('.', 1)[-1], execution))  # node context: '<pipeline>.<node id>'
  return sorted(found, key=lambda item: item[1].id)


def execution_artifacts(
  store: metadata_store.MetadataStore,
  execution_id: int,
  key: str,
  event_type: int = metadata_store_pb2.Event.OUTPUT,
) -> List[metadata_store_pb2.Artifact]:
  """The artifacts an execution wrote (OUTPUT) or read (INPUT) under `key`, e.g. the Evaluator's
  INPUT 'baseline_model'. Cached executions record the reused artifacts the same way. One event
  holds every key of an artifact read twice (an Evaluator whose baseline is its own model)."""
  ids = [
    e.artifact_id
    for e in store.get_events_by_execution_ids([execution_id])
    if e.type == event_type and key in {s.key for s in e.path.steps if s.HasField('key')}
  ]
  return store.get_artifacts_by_id(ids) if ids else []


def execution_artifact(
  store: metadata_store.MetadataStore,
  execution_id: Optional[int],
  key: str,
  event_type: int = metadata_store_pb2.Event.OUTPUT,
) -> Optional[metadata_store_pb2.Artifact]:
  """The first of execution_artifacts, or None (also when there is no execution)."""
  found = (
    execution_artifacts(store, execution_id, key, event_type) if execution_id is not None else []
  )
  return found[0] if found else None
