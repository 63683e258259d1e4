"""The Beam graph of ingestion: inspect every candidate, plan the splits, write the report and examples.

Stage 1 (parallel) reads each candidate once: sha256 + one full validation -> small records.
Stage 2 (once) needs all of them: dedup, splits and the report, then numbers the kept files'
shards. Stage 3 (parallel, one shard at a time) reads each kept file again (from the page cache
locally), checks its size is unchanged, and writes the tf.Examples (split_writer). Only the
small records (path, hash, image facts) travel between stages; no image bytes are held beyond
the one being processed. DoFns keep no state besides constructor arguments, so the graph runs
unchanged on the DirectRunner, Dataflow, Flink or Spark. Workers do not import TensorFlow
(see example_encoding).
"""
import logging
import os
from typing import Iterable, Sequence, Tuple

import apache_beam as beam

from components import features
from components import labels
from components.ingestion import example_encoding
from components.ingestion import image_check
from components.ingestion import inspection
from components.ingestion import manifest
from components.ingestion import splitting
from components.ingestion import split_writer
from components.ingestion.discovery import Discovery, FileEntry
from components.ingestion.options import SPLITS, IngestOptions

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


def _plan_and_report(collected: Tuple[str, Iterable[inspection.Inspected]], options: IngestOptions,
                     ignored: Sequence[FileEntry], input_base: str, spans: Sequence[int],
                     unknown_folders: Sequence[str], report_uri: str):
  """Stage 2: the fate of every file, written to the report; yields the kept files keyed by shard.

  Takes the discovery's parts it reports, not the Discovery: that would pickle every entry into the step.
  """
  inspected = sorted(collected[1], key=lambda i: i.entry.path)
  plan = splitting.plan(inspected, options)
  manifest.write_report(manifest.rows(inspected, plan, ignored), report_uri, input_base, spans,
                        options.max_bad_fraction, unknown_folders)
  kept = {split: [] for split in SPLITS}
  for item in inspected:
    fate = plan[item.entry.path]
    if fate.status == splitting.INGESTED:
      kept[fate.split].append(item)
  logging.info('Planned %s examples; writing them',
               ', '.join(f'{len(items)} {split}' for split, items in kept.items()))
  yield from split_writer.shard_keys(kept)


class _EncodeExample:
  """Stage 3: the serialized tf.Example of one kept file, read again and checked unchanged."""

  def __init__(self, max_image_pixels: int):
    self._max_image_pixels = max_image_pixels
    self._done = 0

  def __call__(self, item: inspection.Inspected) -> bytes:
    data = inspection.read_bytes(item.entry.uri)
    if len(data) != item.entry.size:
      raise RuntimeError(f'{item.entry.uri} changed while it was being ingested; run the ingestion again')
    self._done += 1
    if self._done % _LOG_EVERY == 0:
      logging.info('Worker %d: wrote %d examples', os.getpid(), self._done)
    return to_example(item, image_check.stored_bytes(data, item.info, self._max_image_pixels))


def build(pipeline: beam.Pipeline, discovery: Discovery, input_base: str, examples_uri: str, report_uri: str,
          options: IngestOptions):
  """Adds ingestion to `pipeline`: Split-{train,eval,test} under examples_uri, the report under report_uri."""
  ignored = [e for e in discovery.entries if not e.is_candidate]
  _ = (pipeline
       | 'Candidates' >> beam.Create(discovery.candidates)
       | 'Inspect' >> beam.ParDo(_Inspect(options.max_image_pixels)).with_output_types(inspection.Inspected)
       | 'CollectInspected' >> beam.GroupBy(lambda _: 'all')
       | 'PlanAndReport' >> beam.FlatMap(
           _plan_and_report, options, ignored, input_base, discovery.spans, discovery.unknown_folders,
           report_uri).with_output_types(split_writer.Keyed[inspection.Inspected])
       | 'WriteSplits' >> split_writer.WriteSplits(examples_uri, SPLITS, _EncodeExample(options.max_image_pixels)))
