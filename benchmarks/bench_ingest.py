"""Ingestion throughput and memory: our Beam ingestion vs the floor of decoding the files with PIL.

Same generated ~1024 px grayscale PNGs (seed layout) for both, in one run, in interleaved rounds
(benchmarks/rounds.py: median, min and max of each rate and of the per-round ratio):
- floor: a multiprocessing Pool (fork) on every core reads and fully decodes each file with PIL;
- ours: components.ingestion.ingest with the Beam arguments of a default local run
  (pipeline/configs.py: multi_processing, one worker per core): listing, read, sha256, full
  validation, dedup, splits, TFRecords and the report, worker start-up (~3 s) included.
The large set has 3,999 images so that the start-up is not most of the run; the small one half
(ingested once, after the rounds).
Each ingestion runs in a fresh process; its peak RSS is that of the process plus its children
(psutil, sampled in a thread), at two dataset sizes to show how it depends on the number of images:
the images are streamed, and the per-file records (path, hash, image facts, fate) go through files
and an SQLite table on disk, not memory.
The marginal rate, (n_large - n_small) / (t_large - t_small) with the median t_large of the rounds,
leaves out the fixed cost of a run
(Beam start-up, stage scheduling, report) to show the per-image cost. A last pair of runs, on
32,000 and 4,000 images of 16 px, shows the per-file memory at 8x the files, cheaply.

DICOM (part `dicom`, alone: `python -m benchmarks.run_all ingest.dicom`): two sets of the same
600 12-bit 1024 px chest-X-ray-like images written with pydicom (benchmarks/dicom_data.py),
uncompressed and JPEG lossless; 600 so that the run's fixed cost (a Beam pipeline that does
nothing takes about 8 CPU s on 2 cores, for its two SDK worker processes) is not most of it.
On each set, in rounds that alternate which runs first:
- floor: a multiprocessing Pool (fork) on every core does the conversion ingestion stores, in plain
  Python: read, pydicom decode (pylibjpeg-libjpeg for JPEG lossless), modality LUT, VOI LUT or
  window, scaled to 16 bits, Pillow's 16-bit PNG encoding;
- ours: components.ingestion.ingest as above (start-up included), without the memory sampler
  (psutil every 20 ms costs about a tenth of a core, which the floor does not pay).
Reported per set as above: the median, min and max over the rounds.
"""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import concurrent.futures
import contextlib
import functools
import io
import logging
import multiprocessing
import shutil
import statistics
import tempfile
import threading
import time

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
import numpy as np
from PIL import Image
import psutil
import pydicom
from pydicom.pixels import apply_modality_lut
from pydicom.pixels import apply_voi_lut

from benchmarks import dicom_data
from benchmarks import floors
from benchmarks import rounds
from components import demo_data
from components.ingestion import discovery
from components.ingestion import ingest
from pipeline import configs

IMAGE_SIZE = 1024
PARTS = ('dicom',)  # run alone as `ingest.<part>`; their figures are named ingest.<part>*


class PeakRss:
  """Peak resident memory of this process and all its descendants, sampled every 20 ms."""

  def __init__(self):
    self.peak_mb = 0.0
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._sample, daemon=True)

  def _sample(self):
    me = psutil.Process()
    while not self._stop.is_set():
      total = 0
      for process in [me] + me.children(recursive=True):
        try:
          total += process.memory_info().rss
        except psutil.Error:  # a child that just exited
          pass
      self.peak_mb = max(self.peak_mb, total / 2**20)
      self._stop.wait(0.02)

  def __enter__(self):
    self._thread.start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()


def _floor(root: str, work, chunksize: int) -> float:
  """Images/s of `work` on every candidate's path, on all cores."""
  paths = [e.uri for e in discovery.discover(root).candidates()]
  return floors.pool_rate(work, paths, chunksize)


def _decode_floor(root: str) -> float:
  """Images/s of reading and decoding every candidate with PIL on all cores."""
  return _floor(root, floors.pil_decode, chunksize=8)


def _dicom_to_png(path: str) -> int:
  """The floor's conversion of one DICOM file: pydicom decode, its modality and VOI LUTs, scaled
  to 16 bits over what the stored range gives, one 16-bit PNG; returns the PNG's size."""
  with open(path, 'rb') as f:
    ds = pydicom.dcmread(io.BytesIO(f.read()))
  values = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)
  stored = np.array([0, 2**ds.BitsStored - 1])
  ends = apply_voi_lut(apply_modality_lut(stored, ds), ds)
  low, high = float(np.min(ends)), float(np.max(ends))
  grey = np.clip(np.round((values - low) * (65535 / (high - low))), 0, 65535).astype(np.uint16)
  out = io.BytesIO()
  Image.fromarray(grey).save(out, format='PNG')
  return out.tell()


def _convert_floor(root: str) -> float:
  """Images/s of converting every DICOM candidate to a 16-bit PNG on all cores."""
  return _floor(root, _dicom_to_png, chunksize=4)


def _ingest_here(root: str, out: str, sample_rss: bool) -> tuple:
  with PeakRss() if sample_rss else contextlib.nullcontext() as rss:
    start = time.perf_counter()
    options = PipelineOptions(list(configs.BEAM_PIPELINE_ARGS))
    result = ingest(
      root,
      os.path.join(out, 'examples'),
      os.path.join(out, 'report'),
      pipeline=beam.Pipeline(options=options),
    )
    seconds = time.perf_counter() - start
  return result.summary['image_files'] / seconds, seconds, rss.peak_mb if rss else None


def _ingest(root: str, out: str, sample_rss: bool = True) -> tuple:
  """(images/s, seconds, peak RSS MB) of our ingestion of `root` with a default run's Beam
  arguments.

  Each ingestion runs in a new process, so every size starts from the same memory state (and
  imports are not timed). Without sample_rss the peak RSS is None and not sampled: the sampler
  takes about a tenth of a core (psutil every 20 ms), which a speed comparison should not charge
  to ingestion.
  """
  with concurrent.futures.ProcessPoolExecutor(
    1, mp_context=multiprocessing.get_context('spawn')
  ) as executor:
    return executor.submit(_ingest_here, root, out, sample_rss).result()


def _ingest_rate(root: str, tmp: str) -> float:
  """Images/s of our ingestion of `root` into a new folder under `tmp` (memory not sampled)."""
  return _ingest(root, tempfile.mkdtemp(dir=tmp), sample_rss=False)[0]


def _dataset(root: str, n: int, size: int = IMAGE_SIZE) -> int:
  """Seed layout with ~n images of about `size` px (10% of them under Test/); returns the count."""
  per_class = n // 3
  test = max(1, per_class // 10)
  demo_data.generate(
    root,
    train_per_class=per_class - test,
    test_per_class=test,
    seed=1,
    min_size=max(8, size - 32),
    max_size=size + 32 if size > 32 else size,
    processes=os.cpu_count(),
  )
  return 3 * per_class


def _subset(source: str, target: str, fraction: float) -> int:
  """Hard links to the first `fraction` of each class folder of `source`."""
  count = 0
  for folder, _, files in os.walk(source):
    keep = sorted(files)[: round(len(files) * fraction)]
    os.makedirs(os.path.join(target, os.path.relpath(folder, source)), exist_ok=True)
    for name in keep:
      os.link(
        os.path.join(folder, name), os.path.join(target, os.path.relpath(folder, source), name)
      )
    count += len(keep)
  return count


def _many_files(tmp: str, n: int) -> dict:
  """Peak memory at n and n/8 files of 16 px: the per-file cost of ingestion, with little
  decoding."""
  many, few = os.path.join(tmp, 'many'), os.path.join(tmp, 'few')
  n_many = _dataset(many, n, size=16)
  n_few = _subset(many, few, 1 / 8)
  _, _, few_rss = _ingest(few, os.path.join(tmp, 'out_few'))
  _, _, many_rss = _ingest(many, os.path.join(tmp, 'out_many'))
  print(
    f'many small files: peak RSS {few_rss:.0f} MB at {n_few} files, {many_rss:.0f} MB at {n_many}',
    flush=True,
  )
  return {
    'ingest.many_files.n_small': n_few,
    'ingest.many_files.n_large': n_many,
    'ingest.many_files.peak_rss_mb_small': round(few_rss),
    'ingest.many_files.peak_rss_mb_large': round(many_rss),
  }


def _dicom(tmp: str, quick: bool) -> dict:
  """Ours vs the conversion floor on uncompressed and JPEG-lossless DICOM, in interleaved rounds."""
  n, size, n_rounds = (60, 512, 2) if quick else (600, dicom_data.SIZE, rounds.ROUNDS)
  start = time.perf_counter()
  sets = dicom_data.generate(os.path.join(tmp, 'dicom'), n, size, processes=os.cpu_count())
  print(
    f'Generated {n} DICOM files of {size} px in each of {sorted(sets)} in '
    f'{time.perf_counter() - start:.0f} s',
    flush=True,
  )
  figures = {'ingest.dicom.n': n, 'ingest.dicom.size': size, 'ingest.dicom.rounds': n_rounds}
  for name, (root, _) in sets.items():
    ours, floor = rounds.interleaved(
      functools.partial(_ingest_rate, root, tmp),
      functools.partial(_convert_floor, root),
      n_rounds,
      f'DICOM {name}',
    )
    figures.update(
      rounds.figures(
        f'ingest.dicom_images_per_s.{name}',
        f'ingest.dicom_floor_images_per_s.{name}',
        f'ingest.dicom_vs_floor.{name}',
        ours,
        floor,
      )
    )
    print(
      f'DICOM {name}: ours {rounds.summary(figures, f"ingest.dicom_images_per_s.{name}")} '
      f'images/s, floor {rounds.summary(figures, f"ingest.dicom_floor_images_per_s.{name}")}: '
      f'{rounds.summary(figures, f"ingest.dicom_vs_floor.{name}")}x (median of {n_rounds})',
      flush=True,
    )
  return figures


def run(quick: bool = False, part: str = '') -> dict:
  if part == 'dicom':
    with tempfile.TemporaryDirectory(prefix='bench_ingest_') as tmp:
      return _dicom(tmp, quick)
  cores = os.cpu_count()
  n = 240 if quick else 4000
  with tempfile.TemporaryDirectory(prefix='bench_ingest_') as tmp:
    large = os.path.join(tmp, 'large')
    start = time.perf_counter()
    n_large = _dataset(large, n)
    print(
      f'Generated {n_large} images of ~{IMAGE_SIZE} px in {time.perf_counter() - start:.0f} s',
      flush=True,
    )
    small = os.path.join(tmp, 'small')
    n_small = _subset(large, small, 0.5)

    large_runs = []  # (images/s, seconds, peak RSS MB) of each round's ingestion

    def ingest_large() -> float:
      out = os.path.join(tmp, 'out_large')
      large_runs.append(_ingest(large, out))
      shutil.rmtree(out)  # 2.7 GB
      return large_runs[-1][0]

    ours, floor = rounds.interleaved(
      ingest_large,
      lambda: _decode_floor(large),
      rounds.ROUNDS,
      f'ingestion of {n_large} vs the decode floor (PIL, {cores} processes)',
    )
    _, small_s, small_rss = _ingest(small, os.path.join(tmp, 'out_small'))
    large_s = statistics.median(seconds for _, seconds, _ in large_runs)
    large_rss = max(rss for _, _, rss in large_runs)
    marginal = (n_large - n_small) / (large_s - small_s)
    print(
      f'ingestion of {n_small}: {small_s:.1f} s, peak RSS {small_rss:.0f} MB; of {n_large}: '
      f'{large_s:.1f} s (median), peak RSS {large_rss:.0f} MB (largest); per extra image '
      f'(start-up excluded): {marginal:.1f} images/s',
      flush=True,
    )
    many_files = _many_files(tmp, 2000 if quick else 32000)
    dicom_figures = _dicom(tmp, quick)
  return {
    **rounds.figures(
      'ingest.images_per_s',
      'ingest.decode_floor_images_per_s',
      'ingest.vs_decode_floor',
      ours,
      floor,
    ),
    'ingest.rounds': rounds.ROUNDS,
    'ingest.marginal_images_per_s': round(marginal, 1),
    'ingest.peak_rss_mb_small': round(small_rss),
    'ingest.peak_rss_mb_large': round(large_rss),
    'ingest.n_small': n_small,
    'ingest.n_large': n_large,
    'ingest.cores': cores,
    **many_files,
    **dicom_figures,
  }


if __name__ == '__main__':
  logging.basicConfig(level=logging.WARNING)
  print(run(quick=True))
