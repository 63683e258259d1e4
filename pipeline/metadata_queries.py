"""Reads a pipeline's runs and artifacts back from its ML Metadata store."""
import contextlib
from typing import Iterator, List, Optional

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from pipeline.output_layout import OutputLayout


@contextlib.contextmanager
def open_store(paths: OutputLayout) -> Iterator[metadata_store.MetadataStore]:
  """The SQLite metadata store of an output folder (read only: it must exist)."""
  config = tfx.orchestration.metadata.sqlite_metadata_connection_config(paths.metadata_path)
  config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
  yield metadata_store.MetadataStore(config)


def run_ids(store: metadata_store.MetadataStore) -> List[str]:
  """Pipeline run ids, oldest first."""
  runs = store.get_contexts_by_type('pipeline_run')
  return [c.name for c in sorted(runs, key=lambda c: (c.create_time_since_epoch, c.id))]


def artifacts_of_run(store: metadata_store.MetadataStore, run_id: str, type_name: str,
                     ) -> List[metadata_store_pb2.Artifact]:
  """Artifacts of a type that executions of run `run_id` produced or reused (cached)."""
  context = store.get_context_by_type_and_name('pipeline_run', run_id)
  if context is None:
    raise ValueError(f'No pipeline run {run_id!r} in the metadata store')
  return [a for a in store.get_artifacts_by_context(context.id)
          if store.get_artifact_types_by_id([a.type_id])[0].name == type_name]


def latest_artifact(store: metadata_store.MetadataStore, run_id: str, type_name: str,
                    ) -> Optional[metadata_store_pb2.Artifact]:
  found = artifacts_of_run(store, run_id, type_name)
  return max(found, key=lambda a: a.id) if found else None


def custom_property(artifact: metadata_store_pb2.Artifact, name: str):
  """A custom property's value (int, float or string), or None."""
  if name not in artifact.custom_properties:
    return None
  value = artifact.custom_properties[name]
  return getattr(value, value.WhichOneof('value'))
