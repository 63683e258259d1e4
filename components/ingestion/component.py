"""ImageFolderExampleGen: the TFX component over `components.ingestion.ingest`.

Pass `input_fingerprint=components.ingestion.fingerprint(input_base, span, metadata_csv)`: it is
a parameter, so TFX caching re-runs ingestion exactly when the selected files or the CSV change.
"""

import apache_beam as beam
from tfx import v1 as tfx
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from components.ingestion import api
from components.ingestion.options import IngestOptions

_DEFAULTS = IngestOptions().to_config()


class IngestReport(artifact.Artifact):
  """The ingestion report: `manifest.parquet` (one row per file) and `summary.json` (counts)."""

  TYPE_NAME = 'cxr.IngestReport'  # KFP v2 needs namespaced custom types


@tfx.dsl.components.component(use_beam=True)
def ImageFolderExampleGen(
  examples: tfx.dsl.components.OutputArtifact[standard_artifacts.Examples],
  report: tfx.dsl.components.OutputArtifact[IngestReport],
  input_base: tfx.dsl.components.Parameter[str],
  input_fingerprint: tfx.dsl.components.Parameter[str],
  span: tfx.dsl.components.Parameter[str] = _DEFAULTS['span'],
  eval_fraction: tfx.dsl.components.Parameter[float] = _DEFAULTS['eval_fraction'],
  split_ratios: tfx.dsl.components.Parameter[str] = _DEFAULTS['split_ratios'],
  group_regex: tfx.dsl.components.Parameter[str] = _DEFAULTS['group_regex'],
  unknown_classes: tfx.dsl.components.Parameter[str] = _DEFAULTS['unknown_classes'],
  max_bad_fraction: tfx.dsl.components.Parameter[float] = _DEFAULTS['max_bad_fraction'],
  max_image_pixels: tfx.dsl.components.Parameter[int] = _DEFAULTS['max_image_pixels'],
  split_seed: tfx.dsl.components.Parameter[str] = _DEFAULTS['split_seed'],
  metadata_csv: tfx.dsl.components.Parameter[str] = _DEFAULTS['metadata_csv'],
  allow_confounded_sources: tfx.dsl.components.Parameter[bool] = _DEFAULTS[
    'allow_confounded_sources'
  ],
  patient_salt_file: tfx.dsl.components.Parameter[str] = _DEFAULTS['patient_salt_file'],
  beam_pipeline: tfx.dsl.components.BeamComponentParameter[beam.Pipeline] = None,
) -> None:
  """Ingests chest X-ray class folders under `input_base` into Split-{train,eval,test} TFRecords.

  `input_fingerprint` is not read: it only makes the cache key change with the files. The other
  parameters are IngestOptions.to_config(): pass `**options.to_config()`.
  """
  del input_fingerprint
  options = IngestOptions.from_config(
    dict(
      span=span,
      eval_fraction=eval_fraction,
      split_ratios=split_ratios,
      group_regex=group_regex,
      unknown_classes=unknown_classes,
      max_bad_fraction=max_bad_fraction,
      max_image_pixels=max_image_pixels,
      split_seed=split_seed,
      metadata_csv=metadata_csv,
      allow_confounded_sources=allow_confounded_sources,
      patient_salt_file=patient_salt_file,
    )
  )
  result = api.ingest(input_base, examples.uri, report.uri, options, beam_pipeline)
  examples.split_names = artifact_utils.encode_split_names(list(result.split_names))
  examples.span = result.span
  # TFX's one TFRecord format name; readers detect gzip by the '.gz' suffix.
  examples_utils.set_file_format(examples, 'tfrecords_gzip')
  examples_utils.set_payload_format(examples, example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE)
  summary = result.summary
  report.set_int_custom_property('files_found', summary['files_found'])
  for status, count in summary['status'].items():
    report.set_int_custom_property(status, count)
  for split, counts in summary['splits'].items():
    report.set_int_custom_property(f'{split}_examples', counts['total'])
