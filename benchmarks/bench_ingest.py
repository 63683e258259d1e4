"""Ingestion throughput and memory: our Beam ingestion vs the floor of decoding the files with PIL.

Same generated ~1024 px grayscale PNGs (seed layout) for both, in one run:
- floor: a multiprocessing Pool (fork) on every core reads and fully decodes each file with PIL,
  measured before and after our runs; the faster of the two is the figure (the harder target);
- ours: components.ingestion.ingest with the Beam arguments of a default local run
  (pipeline/configs.py: multi_processing, one worker per core): listing, read, sha256, full
  validation, dedup, splits, TFRecords and the report, worker start-up (~3 s) included.
The large set has 3,999 images so that the start-up is not most of the run; the small one half.
Each ingestion runs in a fresh process; its peak RSS is that of the process plus its children
(psutil, sampled in a thread), at two dataset sizes to show how it depends on the number of images:
the images are streamed, and the per-file records (path, hash, image facts, fate) go through files
and an SQLite table on disk, not memory.
The marginal rate, (n_large - n_small) / (t_large - t_small), leaves out the fixed cost of a run
(Beam start-up, stage scheduling, report) to show the per-image cost. A last pair of runs, on
32,000 and 4,000 images of 16 px, shows the per-file memory at 8x the files, cheaply.

DICOM (part `dicom`, alone: `python -m benchmarks.run_all ingest.dicom`): two sets of the same
12-bit 1024 px chest-X-ray-like pixels written with pydicom (benchmarks/dicom_data.py),
uncompressed and JPEG lossless. On each set, in rounds that alternate which runs first:
- floor: a multiprocessing Pool (fork) on every core does the conversion ingestion stores, in plain
  Python: read, pydicom decode (pylibjpeg-libjpeg for JPEG lossless), modality LUT, VOI LUT or
  window, scaled to 16 bits, Pillow's 16-bit PNG encoding;
- ours: components.ingestion.ingest as above (start-up included), without the memory sampler
  (psutil every 20 ms costs about a tenth of a core, which the floor does not pay).
Reported per set: the median and the range over the rounds of each rate and of the per-round ratio
ours / floor (each round's two runs are adjacent, so load from other processes hits both), and the
median CPU seconds (user + system) of each side's processes: on a shared machine the rates move with
the other jobs, the CPU time much less, and ours minus the floor's is what the pipeline adds (Beam's
worker start-up and shutdown, the plan and report, hashing, the pixel summary).
"""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import concurrent.futures
import contextlib
import io
import logging
import multiprocessing
import resource
import statistics
import tempfile
import threading
import time
from typing import NamedTuple, Optional

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
import numpy as np
from PIL import Image
import psutil
import pydicom
from pydicom.pixels import apply_modality_lut
from pydicom.pixels import apply_voi_lut

from benchmarks import dicom_data
from components import demo_data
from components.ingestion import discovery
from components.ingestion import ingest
from pipeline import configs

IMAGE_SIZE = 1024
PARTS = ('dicom',)  # run alone as `ingest.<part>`; their figures are named ingest.<part>*
# A default local run's Beam arguments, on the DirectRunner's engine without its Prism probe.
DEFAULT_ARGS = ('--runner=FnApiRunner', *configs.BEAM_PIPELINE_ARGS)


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


def _decode(path: str) -> int:
  with open(path, 'rb') as f:
    data = f.read()
  with Image.open(io.BytesIO(data)) as image:
    image.load()
    return image.width


class Run(NamedTuple):
  images_per_s: float
  seconds: float
  cpu_s: float  # user + system time of every process of the run (its workers included)
  peak_rss_mb: Optional[float] = None


def _cpu_s(who: int) -> float:
  usage = resource.getrusage(who)
  return usage.ru_utime + usage.ru_stime


def _floor(root: str, work, chunksize: int) -> Run:
  """`work` on every candidate's path, on all cores."""
  paths = [e.uri for e in discovery.discover(root).candidates()]
  cpu = _cpu_s(resource.RUSAGE_CHILDREN)
  start = time.perf_counter()
  with multiprocessing.get_context('fork').Pool(os.cpu_count()) as pool:
    pool.map(work, paths, chunksize=chunksize)
  seconds = time.perf_counter() - start  # the pool's processes are joined, so counted below
  return Run(len(paths) / seconds, seconds, _cpu_s(resource.RUSAGE_CHILDREN) - cpu)


def _decode_floor(root: str) -> Run:
  """Reading and decoding every candidate with PIL on all cores."""
  return _floor(root, _decode, chunksize=8)


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


def _convert_floor(root: str) -> Run:
  """Converting every DICOM candidate to a 16-bit PNG on all cores."""
  return _floor(root, _dicom_to_png, chunksize=4)


def _ingest_here(root: str, out: str, sample_rss: bool) -> Run:
  with PeakRss() if sample_rss else contextlib.nullcontext() as rss:
    cpu = _cpu_s(resource.RUSAGE_SELF) + _cpu_s(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    options = PipelineOptions(list(DEFAULT_ARGS))
    result = ingest(
      root,
      os.path.join(out, 'examples'),
      os.path.join(out, 'report'),
      pipeline=beam.Pipeline(options=options),
    )
    seconds = time.perf_counter() - start
    # The Beam workers have exited (the runner waits for them), so they are counted.
    cpu = _cpu_s(resource.RUSAGE_SELF) + _cpu_s(resource.RUSAGE_CHILDREN) - cpu
  rate = result.summary['image_files'] / seconds
  return Run(rate, seconds, cpu, rss.peak_mb if rss else None)


def _ingest(root: str, out: str, sample_rss: bool = True) -> Run:
  """Our ingestion of `root` with a default run's Beam arguments.

  Each ingestion runs in a new process, so every size starts from the same memory state (and
  imports are not timed). Without sample_rss the peak RSS is None and not sampled: the sampler
  takes about a tenth of a core (psutil every 20 ms), which a speed comparison should not charge
  to ingestion.
  """
  with concurrent.futures.ProcessPoolExecutor(
    1, mp_context=multiprocessing.get_context('spawn')
  ) as executor:
    return executor.submit(_ingest_here, root, out, sample_rss).result()


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
  few_rss = _ingest(few, os.path.join(tmp, 'out_few')).peak_rss_mb
  many_rss = _ingest(many, os.path.join(tmp, 'out_many')).peak_rss_mb
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


def _median_and_range(values: list, digits: int) -> tuple:
  return round(statistics.median(values), digits), [
    round(min(values), digits),
    round(max(values), digits),
  ]


def _dicom(tmp: str, quick: bool) -> dict:
  """Ours vs the conversion floor on uncompressed and JPEG-lossless DICOM, in interleaved rounds."""
  n, size, rounds = (60, 512, 2) if quick else (150, dicom_data.SIZE, 3)
  start = time.perf_counter()
  sets = dicom_data.generate(os.path.join(tmp, 'dicom'), n, size, processes=os.cpu_count())
  print(
    f'Generated {n} DICOM files of {size} px in each of {sorted(sets)} in '
    f'{time.perf_counter() - start:.0f} s',
    flush=True,
  )
  figures = {'ingest.dicom.n': n, 'ingest.dicom.size': size, 'ingest.dicom.rounds': rounds}
  for name, (root, _) in sets.items():
    ours, floor = [], []
    for round_ in range(rounds):
      out = os.path.join(tmp, f'out_dicom_{name}_{round_}')
      if round_ % 2:  # alternate which runs first
        ours.append(_ingest(root, out, sample_rss=False))
        floor.append(_convert_floor(root))
      else:
        floor.append(_convert_floor(root))
        ours.append(_ingest(root, out, sample_rss=False))
      print(
        f'DICOM {name}, round {round_ + 1}/{rounds}: ours {ours[-1].images_per_s:.1f} images/s '
        f'({ours[-1].cpu_s:.1f} CPU s), floor {floor[-1].images_per_s:.1f} images/s '
        f'({floor[-1].cpu_s:.1f} CPU s) = {ours[-1].images_per_s / floor[-1].images_per_s:.2f}x',
        flush=True,
      )
    ratios = [o.images_per_s / f.images_per_s for o, f in zip(ours, floor)]
    for key, values, digits in (
      ('dicom_images_per_s', [o.images_per_s for o in ours], 1),
      ('dicom_floor_images_per_s', [f.images_per_s for f in floor], 1),
      ('dicom_vs_floor', ratios, 2),
      ('dicom_cpu_s', [o.cpu_s for o in ours], 1),
      ('dicom_floor_cpu_s', [f.cpu_s for f in floor], 1),
    ):
      median, spread = _median_and_range(values, digits)
      figures[f'ingest.{key}.{name}'] = median
      figures[f'ingest.{key}_range.{name}'] = spread
    print(
      f'DICOM {name}: ours {figures[f"ingest.dicom_images_per_s.{name}"]} images/s, floor '
      f'{figures[f"ingest.dicom_floor_images_per_s.{name}"]}: '
      f'{figures[f"ingest.dicom_vs_floor.{name}"]}x (median of {rounds}, range '
      f'{figures[f"ingest.dicom_vs_floor_range.{name}"]})',
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

    floor_rate, floor_s, _, _ = _decode_floor(large)
    print(
      f'decode floor (PIL, {cores} processes): {n_large} images in {floor_s:.1f} s = '
      f'{floor_rate:.1f} images/s',
      flush=True,
    )
    _, small_s, _, small_rss = _ingest(small, os.path.join(tmp, 'out_small'))
    print(f'ingestion of {n_small}: {small_s:.1f} s, peak RSS {small_rss:.0f} MB', flush=True)
    rate, large_s, _, large_rss = _ingest(large, os.path.join(tmp, 'out_large'))
    marginal = (n_large - n_small) / (large_s - small_s)
    print(
      f'ingestion of {n_large}: {large_s:.1f} s = {rate:.1f} images/s, '
      f'peak RSS {large_rss:.0f} MB; per extra image (start-up excluded): {marginal:.1f} images/s',
      flush=True,
    )
    floor_rate_after = _decode_floor(large).images_per_s
    floor_rate = max(floor_rate, floor_rate_after)
    print(
      f'decode floor again: {floor_rate_after:.1f} images/s; '
      f'ingestion = {rate / floor_rate:.2f}x the faster floor',
      flush=True,
    )
    many_files = _many_files(tmp, 2000 if quick else 32000)
    dicom_figures = _dicom(tmp, quick)
  return {
    'ingest.images_per_s': round(rate, 1),
    'ingest.decode_floor_images_per_s': round(floor_rate, 1),
    'ingest.vs_decode_floor': round(rate / floor_rate, 2),
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
