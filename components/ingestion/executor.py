"""The executor of ImageFolderExampleGen: `api.ingest`, and its results on the artifacts."""

from typing import Any, Dict, List

from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.proto import example_gen_pb2
from tfx.types import artifact
from tfx.types import artifact_utils
from tfx.types import standard_component_specs

from components.ingestion import api
from components.ingestion.options import IngestOptions

REPORT_KEY = 'report'
_OPTION_KEYS = tuple(IngestOptions().to_config())


class Executor(base_beam_executor.BaseBeamExecutor):
  """Ingests input_base with the options of the execution properties; input_config holds only the
  patterns the driver fingerprints (cache_key.py)."""

  def Do(
    self,
    input_dict: Dict[str, List[artifact.Artifact]],
    output_dict: Dict[str, List[artifact.Artifact]],
    exec_properties: Dict[str, Any],
  ) -> None:
    del input_dict
    examples = artifact_utils.get_single_instance(
      output_dict[standard_component_specs.EXAMPLES_KEY]
    )
    report = artifact_utils.get_single_instance(output_dict[REPORT_KEY])
    options = IngestOptions.from_config({key: exec_properties[key] for key in _OPTION_KEYS})
    result = api.ingest(
      exec_properties[standard_component_specs.INPUT_BASE_KEY],
      examples.uri,
      report.uri,
      options,
      self._make_beam_pipeline(),
    )
    examples.split_names = artifact_utils.encode_split_names(list(result.split_names))
    examples.span = result.span
    # The driver recorded span 0 (no {SPAN} pattern): the span ingested replaces it.
    examples.set_int_custom_property('span', result.span)
    # TFX's one TFRecord format name; readers detect gzip by the '.gz' suffix.
    examples_utils.set_file_format(examples, 'tfrecords_gzip')
    examples_utils.set_payload_format(examples, example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE)
    summary = result.summary
    report.set_int_custom_property('files_found', summary['files_found'])
    for status, count in summary['status'].items():
      report.set_int_custom_property(status, count)
    for split, counts in summary['splits'].items():
      report.set_int_custom_property(f'{split}_examples', counts['total'])
