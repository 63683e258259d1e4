"""The Beam graph of ingestion: inspect every candidate, plan the splits, write the report and
examples.

Stage 1 (parallel, a chunk of candidates at a time; a DICOM file weighs DICOM_CHUNK_WEIGHT) reads
each candidate once: sha256 + one full validation -> a small record per file, written to a file per
chunk. A DICOM file's validation is its conversion: the 16-bit PNG it makes is kept in the working
folder, named by the sha256. Stage 2 (once) loads those records into a FileTable (SQLite on local
disk): dedup, splits and the report, then writes the list of each shard's files. Stage 3 (parallel,
one shard at a time) reads each kept file again (from the page cache locally), checks its size is
unchanged, decodes the stored image once for its pixel summary (bit depth, intensity) and writes the
tf.Examples (split_writer). A DICOM file is not read again: stage 3 stores stage 1's PNG with the
pixel summary stage 1 took from the converted pixels, so each file is read, parsed, converted and
encoded once. Between stages only file names travel (records); no image bytes are held beyond the
one being processed and no stage holds per-file objects, so memory does not grow with the number of
images. DoFns keep no state besides constructor arguments, so the graph runs unchanged on the
DirectRunner, Dataflow, Flink or Spark. Workers do not import TensorFlow (see example_encoding).
"""

import dataclasses
import logging
import os
import posixpath
from typing import List, Optional, Sequence, Tuple
import uuid

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from components import features
from components import labels
from components.ingestion import example_encoding
from components.ingestion import image_check
from components.ingestion import inspection
from components.ingestion import manifest
from components.ingestion import metadata_csv
from components.ingestion import records
from components.ingestion import split_writer
from components.ingestion import splitting
from components.ingestion.discovery import Discovery
from components.ingestion.discovery import FileEntry
from components.ingestion.discovery import named_like_dicom
from components.ingestion.file_table import FileTable
from components.ingestion.file_table import INGESTED
from components.ingestion.options import IngestOptions
from components.ingestion.options import SPLITS

CANDIDATES_PER_CHUNK = (
  32  # stage 1's unit of work: small enough to keep every worker busy to the end
)
# A DICOM candidate counts as this many in a chunk (chunks of 4 DICOM files): its conversion (a
# decode, the LUTs and a 16-bit PNG encoding, ~0.35 s at 1024 px) costs ~50x a PNG's check, and
# the DirectRunner deals a stage's chunks to its workers round-robin before it starts, so with 32
# DICOM files a chunk one core could idle for 32 conversions (150 files: 86 on one worker, 64 on
# the other).
DICOM_CHUNK_WEIGHT = 8
_LOG_EVERY = 500
_INSPECTED = 'inspected'  # stage 1's folder of record files, one per chunk attempt


@dataclasses.dataclass(frozen=True)
class StagedInputs:
  """A discovery listed into the run's working folder: the graph's input, without per-file
  objects."""

  workdir: str
  candidate_chunks: List[str]  # record files of the candidates' FileEntry rows
  chunk_sizes: List[int]  # the candidates in each
  candidates: int
  ignored: str  # record file of the other files' FileEntry rows
  ignored_count: int
  spans: Tuple[int, ...]
  span: int
  unknown_folders: Tuple[str, ...]
  metadata_csv: Optional[str] = None  # the metadata CSV copied into workdir (metadata_csv.stage)


def stage_inputs(discovery: Discovery, workdir: str) -> StagedInputs:
  """Lists the discovered files in one pass: candidates into chunks, the other files into one
  file."""
  chunks = records.ChunkWriter(FileSystems.join(workdir, 'candidates'), CANDIDATES_PER_CHUNK)
  with records.Writer(FileSystems.join(workdir, 'ignored')) as others, chunks:
    for entry in discovery.entries():
      if not entry.is_candidate:
        others.add(dataclasses.astuple(entry))
      elif named_like_dicom(entry.path):
        chunks.add(dataclasses.astuple(entry), DICOM_CHUNK_WEIGHT)
      else:
        chunks.add(dataclasses.astuple(entry))
  return StagedInputs(
    workdir,
    chunks.uris,
    chunks.sizes,
    chunks.count,
    others.uri,
    others.count,
    discovery.spans,
    discovery.span,
    discovery.unknown_folders,
  )


def _record_file(chunk: str) -> str:
  """The name of a stage 1 attempt's record file for `chunk`: one of its own per attempt."""
  return f'{posixpath.basename(chunk)}-{uuid.uuid4().hex}'


def inspected_so_far(staged: StagedInputs) -> int:
  """About how many candidates stage 1 has taken up: those of the chunks with a record file (one
  per attempt, created when it starts; a chunk retried counts once). Workers may run in other
  processes or machines: their files are what the runner sees of their progress."""
  pattern = FileSystems.join(staged.workdir, _INSPECTED, '*')
  started = {
    posixpath.basename(m.path).rpartition('-')[0]
    for m in FileSystems.match([pattern])[0].metadata_list
  }
  return sum(
    n
    for chunk, n in zip(staged.candidate_chunks, staged.chunk_sizes)
    if posixpath.basename(chunk) in started
  )


def to_example(item: inspection.Inspected, image: bytes) -> bytes:
  """The serialized raw tf.Example of one ingested image (schemas/schema.pbtxt)."""
  entry, info, subject = item.entry, item.info, item.subject
  pixels = item.pixels or image_check.pixel_summary(image)
  optional = (
    {features.PATIENT_HASH_KEY: subject.patient_hash.encode()} if subject.patient_hash else {}
  )
  return example_encoding.serialize(
    {
      **optional,
      features.VIEW_POSITION_KEY: subject.view_position.encode(),
      features.SEX_KEY: subject.sex.encode(),
      features.AGE_BAND_KEY: subject.age_band.encode(),
      features.MANUFACTURER_KEY: subject.manufacturer.encode(),
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
      features.BIT_DEPTH_KEY: pixels.bit_depth,
      features.INTENSITY_MEAN_KEY: pixels.intensity_mean,
      features.INTENSITY_STD_KEY: pixels.intensity_std,
    }
  )


class _InspectChunk(beam.DoFn):
  """Stage 1: hashes and validates a chunk's candidates; yields the file of their records."""

  def __init__(self, max_image_pixels: int, folder: str, salt: bytes, stored_folder: str):
    self._max_image_pixels = max_image_pixels
    self._folder = folder
    self._salt = salt
    self._stored_folder = stored_folder
    self._done = 0

  def _inspect(self, row: list) -> list:
    item = inspection.inspect_file(
      FileEntry(*row), self._max_image_pixels, self._salt, self._stored_folder
    )
    beam.metrics.Metrics.counter('ingestion', 'quarantined' if item.reason else 'valid').inc()
    self._done += 1
    if self._done % _LOG_EVERY == 0:
      logging.info('Worker %d: inspected %d files', os.getpid(), self._done)
    return inspection.to_row(item)

  def process(self, chunk: str):
    # A name of its own per attempt: the plan reads only the files of the attempts that succeeded.
    out = FileSystems.join(self._folder, _record_file(chunk))
    records.write(out, map(self._inspect, records.read(chunk)))
    yield out


def _plan_and_report(
  inspected: Sequence[str],
  staged: StagedInputs,
  input_base: str,
  report_uri: str,
  options: IngestOptions,
):
  """Stage 2: the fate of every file, written to the report; yields (shard key, list file) per
  shard, none when the report refuses the data (api.ingest then raises the refusal)."""
  with FileTable() as table:
    table.add_ignored(FileEntry(*row) for row in records.read(staged.ignored))
    for uri in inspected:
      table.add_inspected(map(inspection.from_row, records.read(uri)))
    csv_counts = None
    if staged.metadata_csv:
      csv_counts = dict(
        path=options.metadata_csv, **metadata_csv.apply(table.db, staged.metadata_csv)
      )
    splitting.assign(table, options)
    summary = manifest.write_report(
      table,
      report_uri,
      input_base,
      staged.spans,
      options.max_bad_fraction,
      staged.unknown_folders,
      csv_counts,
      options.allow_confounded_sources,
    )
    if manifest.refusal(summary, report_uri):
      logging.info('The report refuses the data: no examples are written')
      return
    kept = {split: table.count('status = ? AND split = ?', (INGESTED, split)) for split in SPLITS}
    logging.info(
      'Planned %s examples; writing them', ', '.join(f'{n} {split}' for split, n in kept.items())
    )
    for split, n in kept.items():
      yield from split_writer.write_shard_lists(
        split,
        map(inspection.to_row, table.ingested(split)),
        n,
        FileSystems.join(staged.workdir, 'shards'),
      )


class _EncodeExample:
  """Stage 3: the serialized tf.Example of one kept file: the bytes stage 1 kept for it when its
  check made them (the file itself is not read again), else the file read again and checked
  unchanged."""

  def __init__(self, max_image_pixels: int, stored_folder: str):
    self._max_image_pixels = max_image_pixels
    self._stored_folder = stored_folder
    self._done = 0

  def __call__(self, row: list) -> bytes:
    item = inspection.from_row(row)
    self._done += 1
    if self._done % _LOG_EVERY == 0:
      logging.info('Worker %d: wrote %d examples', os.getpid(), self._done)
    if image_check.made_by_check(item.info):
      image = inspection.read_bytes(inspection.stored_uri(self._stored_folder, item.sha256))
      return to_example(item, image)
    data = inspection.read_bytes(item.entry.uri)
    if len(data) != item.entry.size:
      raise RuntimeError(
        f'{item.entry.uri} changed while it was being ingested; run the ingestion again'
      )
    return to_example(item, image_check.stored_bytes(data, item.info, self._max_image_pixels))


def build(
  pipeline: beam.Pipeline,
  staged: StagedInputs,
  input_base: str,
  examples_uri: str,
  report_uri: str,
  options: IngestOptions,
  salt: bytes,
):
  """Adds ingestion to `pipeline`: Split-{train,eval,test} under examples_uri, the report under
  report_uri; `salt` hashes the patient ids (subjects.py)."""
  stored_folder = FileSystems.join(staged.workdir, 'stored')
  _ = (
    pipeline
    | 'CandidateChunks' >> beam.Create(staged.candidate_chunks)
    | 'Inspect'
    >> beam.ParDo(
      _InspectChunk(
        options.max_image_pixels,
        FileSystems.join(staged.workdir, _INSPECTED),
        salt,
        stored_folder,
      )
    )
    | 'CollectInspected' >> beam.combiners.ToList()
    | 'PlanAndReport' >> beam.FlatMap(_plan_and_report, staged, input_base, report_uri, options)
    | 'WriteSplits'
    >> split_writer.WriteSplits(
      examples_uri, SPLITS, _EncodeExample(options.max_image_pixels, stored_folder)
    )
  )
