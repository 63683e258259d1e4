"""Plain-Python entry point of ingestion (the TFX component is a thin wrapper over `ingest`)."""

import dataclasses
import functools
import logging
from typing import Dict, Optional
import uuid

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from components import progress
from components.ingestion import beam_pipeline
from components.ingestion import discovery
from components.ingestion import manifest
from components.ingestion import metadata_csv
from components.ingestion import subjects
from components.ingestion.options import IngestOptions
from components.ingestion.options import SPLITS

PROGRESS_SECONDS = 20  # how often a running ingestion logs how far it got


def _stage(
  input_base: str, options: IngestOptions, workdir: str, salt: bytes
) -> beam_pipeline.StagedInputs:
  """The files to ingest, listed (and the metadata CSV copied, patient ids hashed) into the
  working folder."""
  csv_copy = None
  if options.metadata_csv:
    csv_copy = metadata_csv.stage(options.metadata_csv, workdir, salt)
  found = discovery.discover(input_base, options)
  staged = dataclasses.replace(beam_pipeline.stage_inputs(found, workdir), metadata_csv=csv_copy)
  if not staged.candidates:
    raise ValueError(
      f'No image files found under {input_base} ({staged.ignored_count} other files); expected '
      f'class folders of PNG/JPEG/BMP/TIFF images'
    )
  logging.info(
    'Ingesting %s: %d image files and %d other files%s',
    input_base,
    staged.candidates,
    staged.ignored_count,
    f' in spans {list(staged.spans)}' if staged.spans else '',
  )
  return staged


def _log_progress(staged: beam_pipeline.StagedInputs, seconds: float) -> None:
  done = beam_pipeline.inspected_so_far(staged)
  if not done:  # the workers are starting
    return
  if done < staged.candidates:
    progress.logger.info(
      '  ~%d of %d image files inspected (%.1f images/s)', done, staged.candidates, done / seconds
    )
  else:
    progress.logger.info('  %d image files inspected; writing the examples', done)


def check(input_base: str, options: IngestOptions = IngestOptions()) -> None:
  """Raises the ValueError `ingest` raises on a span selection that finds no span folder or on an
  unusable metadata CSV: what a runner checks before it starts (one listing of input_base)."""
  discovery.check_spans(input_base, options.span)
  if options.metadata_csv:
    metadata_csv.check(options.metadata_csv)


@dataclasses.dataclass(frozen=True)
class IngestResult:
  summary: Dict  # the content of summary.json
  span: int  # latest span ingested (0 without span folders)
  split_names: tuple
  manifest_uri: str
  summary_uri: str


def ingest(
  input_base: str,
  examples_uri: str,
  report_uri: str,
  options: IngestOptions = IngestOptions(),
  pipeline: Optional[beam.Pipeline] = None,
) -> IngestResult:
  """Ingests the class folders under input_base into TFRecords under examples_uri/Split-*.

  Writes report_uri/manifest.parquet and report_uri/summary.json, logs a readable summary, and
  raises ValueError on unknown class folders (unless ignored), an unusable metadata CSV, when no
  image is found, or when more than options.max_bad_fraction of the image files are quarantined;
  manifest.MissingClassError (a ValueError) when a split lacks a class;
  confounding.ConfoundedSourcesError (a ValueError) when a test class comes only from sources
  holding no other test class, unless options.allow_confounded_sources. No examples are written
  for refused data.
  `pipeline` defaults to Beam's in-process runner (FnApiRunner, the DirectRunner's engine); pass
  one built with the pipeline's Beam args to run in parallel or on a cluster. The stages hand each
  other record files in examples_uri/.ingest-*/, removed at the end; every PROGRESS_SECONDS the
  share of files inspected so far is logged (components.progress). Patient ids are hashed with
  the salt of options.patient_salt_file before anything is written (subjects.py).
  """
  salt = subjects.salt(options.patient_salt_file)
  workdir = FileSystems.join(examples_uri, f'.ingest-{uuid.uuid4().hex}')
  try:
    staged = _stage(input_base, options, workdir, salt)
    with progress.every(PROGRESS_SECONDS, functools.partial(_log_progress, staged)):
      with pipeline or beam.Pipeline(runner='FnApiRunner') as p:
        beam_pipeline.build(p, staged, input_base, examples_uri, report_uri, options, salt)
  finally:
    if FileSystems.exists(workdir):
      FileSystems.delete([workdir])
  summary = manifest.read_summary(report_uri)
  logging.info('%s\n  report: %s', manifest.format_summary(summary), report_uri)
  manifest.check(summary, report_uri)
  if summary['confounding']['warning']:
    logging.warning('%s (allowed by allow_confounded_sources)', summary['confounding']['warning'])
  return IngestResult(
    summary=summary,
    span=staged.span,
    split_names=SPLITS,
    manifest_uri=FileSystems.join(report_uri, manifest.MANIFEST_FILE),
    summary_uri=FileSystems.join(report_uri, manifest.SUMMARY_FILE),
  )
