"""ImageFolderExampleGen: the TFX component over `components.ingestion.ingest`.

A FileBasedExampleGen, so that TFX's ExampleGen driver fingerprints the input when the step runs,
before the cache lookup: FileBasedDriver under the local runners, and on Kubeflow v2 the
`preCacheCheck` hook TFX compiles for FileBasedExampleGen subclasses only. A run over unchanged
files re-uses the cached ingestion and every step after it; a new span or a changed file re-runs
from ingestion (cache_key.py says which files the fingerprint covers).
"""

from tfx import types
from tfx.components import FileBasedExampleGen
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import artifact
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ExecutionParameter

from components.ingestion import cache_key
from components.ingestion import executor
from components.ingestion.options import IngestOptions


class IngestReport(artifact.Artifact):
  """The ingestion report: `manifest.parquet` (one row per file) and `summary.json` (counts)."""

  TYPE_NAME = 'cxr.IngestReport'  # KFP v2 needs namespaced custom types


class ImageFolderExampleGenSpec(standard_component_specs.FileBasedExampleGenSpec):
  """FileBasedExampleGen's parameters and `examples`, plus the ingestion options (keys and types
  of IngestOptions.to_config()) and the `report`."""

  PARAMETERS = {
    **standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
    **{
      key: ExecutionParameter(type=type(value))
      for key, value in IngestOptions().to_config().items()
    },
  }
  OUTPUTS = {
    **standard_component_specs.FileBasedExampleGenSpec.OUTPUTS,
    executor.REPORT_KEY: ChannelParameter(type=IngestReport),
  }


class ImageFolderExampleGen(FileBasedExampleGen):
  """Ingests chest X-ray class folders under `input_base` into Split-{train,eval,test} TFRecords,
  and writes the ingestion report."""

  SPEC_CLASS = ImageFolderExampleGenSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

  def __init__(self, input_base: str, **ingest_config):
    """`ingest_config`: keys of IngestOptions.to_config(), checked here; missing ones take the
    defaults. Skips FileBasedExampleGen.__init__, which builds its own spec class."""
    config = IngestOptions.from_config(ingest_config).to_config()
    spec = ImageFolderExampleGenSpec(
      input_base=input_base,
      input_config=cache_key.input_config(input_base, config['metadata_csv']),
      output_config=example_gen_pb2.Output(),  # the executor chooses the splits
      output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
      output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
      examples=types.Channel(type=standard_artifacts.Examples),
      report=types.Channel(type=IngestReport),
      **config,
    )
    base_beam_component.BaseBeamComponent.__init__(self, spec=spec)
