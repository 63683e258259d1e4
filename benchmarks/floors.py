"""Floors: the plain-Python work a benchmark's subject must at least do, on every core."""

import io
import multiprocessing
import os
import time
from typing import Callable, Sequence

from PIL import Image


def pil_decode(path: str) -> int:
  """Reads and fully decodes one image file with PIL; returns its width."""
  with open(path, 'rb') as f:
    data = f.read()
  with Image.open(io.BytesIO(data)) as image:
    image.load()
    return image.width


def pool_rate(work: Callable[[str], object], paths: Sequence[str], chunksize: int) -> float:
  """Files per second of `work` on every path, in a fork Pool of one process per core."""
  start = time.perf_counter()
  with multiprocessing.get_context('fork').Pool(os.cpu_count()) as pool:
    pool.map(work, paths, chunksize=chunksize)
  return len(paths) / (time.perf_counter() - start)
