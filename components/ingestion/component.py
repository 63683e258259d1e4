"""ImageFolderExampleGen: the TFX component over `components.ingestion.ingest`.

Pass `input_fingerprint=components.ingestion.fingerprint(input_base, span)`: it is a
parameter, so TFX caching re-runs ingestion exactly when the selected files change.
"""
import apache_beam as beam
from tfx import v1 as tfx
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from components.ingestion import api
from components.ingestion.options import IngestOptions, format_split_ratios, parse_split_ratios
from pipeline import configs


class IngestReport(artifact.Artifact):
  """The ingestion report: `manifest.parquet` (one row per file found) and `summary.json` (counts)."""
  TYPE_NAME = 'cxr.IngestReport'  # KFP v2 needs namespaced custom types


@tfx.dsl.components.component(use_beam=True)
def ImageFolderExampleGen(  # pylint: disable=invalid-name
    examples: tfx.dsl.components.OutputArtifact[standard_artifacts.Examples],
    report: tfx.dsl.components.OutputArtifact[IngestReport],
    input_base: tfx.dsl.components.Parameter[str],
    input_fingerprint: tfx.dsl.components.Parameter[str],
    span: tfx.dsl.components.Parameter[str] = 'latest',
    eval_fraction: tfx.dsl.components.Parameter[float] = configs.EVAL_FRACTION_OF_TRAIN,
    split_ratios: tfx.dsl.components.Parameter[str] = format_split_ratios(configs.SPLIT_RATIOS),
    group_regex: tfx.dsl.components.Parameter[str] = '',
    unknown_classes: tfx.dsl.components.Parameter[str] = 'error',
    max_bad_fraction: tfx.dsl.components.Parameter[float] = configs.MAX_BAD_FRACTION,
    max_image_pixels: tfx.dsl.components.Parameter[int] = configs.MAX_IMAGE_PIXELS,
    beam_pipeline: tfx.dsl.components.BeamComponentParameter[beam.Pipeline] = None,
) -> None:
  """Ingests chest X-ray class folders under `input_base` into Split-{train,eval,test} TFRecords.

  `input_fingerprint` is not read: it only makes the cache key change with the files. See
  IngestOptions for the other parameters; `split_ratios` is 'train,eval,test', e.g. '0.8,0.1,0.1'.
  """
  del input_fingerprint
  options = IngestOptions(span=span, eval_fraction=eval_fraction, split_ratios=parse_split_ratios(split_ratios),
                          group_regex=group_regex, unknown_classes=unknown_classes,
                          max_bad_fraction=max_bad_fraction, max_image_pixels=max_image_pixels)
  result = api.ingest(input_base, examples.uri, report.uri, options, beam_pipeline)
  examples.split_names = artifact_utils.encode_split_names(list(result.split_names))
  examples.span = result.span
  examples_utils.set_file_format(examples, 'tfrecords_gzip')  # TFX's one TFRecord format; reads detect gzip by '.gz'
  examples_utils.set_payload_format(examples, example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE)
  summary = result.summary
  report.set_int_custom_property('files_found', summary['files_found'])
  for status, count in summary['status'].items():
    report.set_int_custom_property(status, count)
  for split, counts in summary['splits'].items():
    report.set_int_custom_property(f'{split}_examples', counts['total'])
