"""The Beam graph of ingestion: inspect every candidate, plan the splits, write examples and report.

Stage 1 (parallel) reads each candidate once: sha256 + one full validation -> small records.
The plan (dedup + splits) needs all hashes, so it runs once over those records and reaches
stage 2 as a side input. Stage 2 (parallel) reads each kept file again (from the page cache
locally), checks its size is unchanged, and streams tf.Examples into per-split TFRecord files
(split_writer). No image bytes are held beyond the element being processed; DoFns keep no state
besides constructor arguments and open files, so the graph runs unchanged on the DirectRunner,
Dataflow, Flink or Spark. Workers do not import TensorFlow (see example_encoding).
"""
import logging
import os

import apache_beam as beam

from components import features
from components import labels
from components.ingestion import example_encoding
from components.ingestion import image_check
from components.ingestion import inspection
from components.ingestion import manifest
from components.ingestion import splitting
from components.ingestion.discovery import Discovery
from components.ingestion.options import SPLITS, IngestOptions
from components.ingestion.split_writer import WriteSplits

_LOG_EVERY = 500


def to_example(item: inspection.Inspected, image: bytes) -> bytes:
  """The serialized raw tf.Example of one ingested image (schemas/schema.pbtxt)."""
  entry, info = item.entry, item.info
  return example_encoding.serialize({
      features.IMAGE_KEY: image,
      features.LABEL_KEY: entry.label,
      features.LABEL_NAME_KEY: labels.CLASS_NAMES[entry.label].encode(),
      features.PATH_KEY: entry.path.encode(),
      features.SHA256_KEY: item.sha256.encode(),
      features.SOURCE_KEY: entry.source.encode(),
      features.FORMAT_KEY: info.stored_format.encode(),
      features.HEIGHT_KEY: info.height,
      features.WIDTH_KEY: info.width,
      features.CHANNELS_KEY: info.channels,
  })


class _Inspect(beam.DoFn):
  """Stage 1: hash and validate one candidate."""

  def __init__(self, max_image_pixels: int):
    self._max_image_pixels = max_image_pixels
    self._done = 0

  def process(self, entry):
    item = inspection.inspect_file(entry, self._max_image_pixels)
    beam.metrics.Metrics.counter('ingestion', 'quarantined' if item.reason else 'valid').inc()
    self._done += 1
    if self._done % _LOG_EVERY == 0:
      logging.info('Worker %d: inspected %d files', os.getpid(), self._done)
    yield item


class _EncodeExample(beam.DoFn):
  """Stage 2: (split, tf.Example) of one kept file."""

  def __init__(self, max_image_pixels: int):
    self._max_image_pixels = max_image_pixels
    self._done = 0

  def process(self, item, plan):
    fate = plan[item.entry.path]
    if fate.status != splitting.INGESTED:
      return
    data = inspection.read_bytes(item.entry.uri)
    if len(data) != item.entry.size:
      raise RuntimeError(f'{item.entry.uri} changed while it was being ingested; run the ingestion again')
    image = image_check.stored_bytes(data, item.info, self._max_image_pixels)
    beam.metrics.Metrics.counter('ingestion', f'written_{fate.split}').inc()
    self._done += 1
    if self._done % _LOG_EVERY == 0:
      logging.info('Worker %d: wrote %d examples', os.getpid(), self._done)
    yield fate.split, to_example(item, image)


def build(pipeline: beam.Pipeline, discovery: Discovery, input_base: str, examples_uri: str, report_uri: str,
          options: IngestOptions):
  """Adds ingestion to `pipeline`: Split-{train,eval,test} under examples_uri, the report under report_uri."""
  ignored = [e for e in discovery.entries if not e.is_candidate]
  inspected = (pipeline
               | 'Candidates' >> beam.Create(discovery.candidates)
               | 'Inspect' >> beam.ParDo(_Inspect(options.max_image_pixels)))
  all_inspected = inspected | 'CollectInspected' >> beam.combiners.ToList()
  plan = all_inspected | 'PlanSplits' >> beam.Map(splitting.plan, options)

  _ = (inspected
       | 'EncodeExamples' >> beam.ParDo(_EncodeExample(options.max_image_pixels), plan=beam.pvalue.AsSingleton(plan))
       | 'WriteSplits' >> WriteSplits(examples_uri, SPLITS))

  _ = (all_inspected
       | 'ManifestRows' >> beam.Map(manifest.rows, plan=beam.pvalue.AsSingleton(plan), ignored=ignored)
       | 'WriteReport' >> beam.Map(manifest.write_report, report_uri, input_base, discovery.spans,
                                   options.max_bad_fraction, discovery.unknown_folders))
