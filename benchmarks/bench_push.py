"""Push cost: AtomicPusher's publish (copy + fsync + rename) vs TFX Pusher's plain copy.

Same model-sized folder for both, in one process: a SavedModel-like tree whose variables file
has ResNet152V2's size (about 233 MB of float32 weights; 32 MB with quick). Baseline:
tfx.utils.io_utils.copy_dir, what TFX's Pusher runs; ours: components.pusher.versioned_dir.publish.
Median of a few runs each.
"""

import os
import statistics
import tempfile
import time

from tfx.utils import io_utils

from components.pusher import versioned_dir

RESNET152V2_WEIGHT_BYTES = 58_300_000 * 4  # ~58.3M parameters (notop + seed head), float32


def _write_model(model_dir: str, size: int) -> None:
  os.makedirs(os.path.join(model_dir, 'variables'))
  with open(os.path.join(model_dir, 'saved_model.pb'), 'wb') as f:
    f.write(os.urandom(2_000_000))
  with open(os.path.join(model_dir, 'variables', 'variables.index'), 'wb') as f:
    f.write(os.urandom(50_000))
  with open(os.path.join(model_dir, 'variables', 'variables.data-00000-of-00001'), 'wb') as f:
    for _ in range(size // (8 << 20)):
      f.write(os.urandom(8 << 20))


def _median_seconds(fn, repeats: int) -> float:
  times = []
  for i in range(repeats):
    start = time.perf_counter()
    fn(i)
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def run(quick: bool = False) -> dict:
  """Builds the model folder, times both pushes; returns the figures."""
  size, repeats = (32 << 20, 3) if quick else (RESNET152V2_WEIGHT_BYTES, 3)
  with tempfile.TemporaryDirectory(dir=os.getcwd()) as work_dir:
    model_dir = os.path.join(work_dir, 'model')
    _write_model(model_dir, size)
    megabytes = (
      sum(
        os.path.getsize(os.path.join(parent, name))
        for parent, _, names in os.walk(model_dir)
        for name in names
      )
      / 1e6
    )
    tfx_copy = _median_seconds(
      lambda i: io_utils.copy_dir(model_dir, os.path.join(work_dir, 'tfx', str(i))), repeats
    )
    atomic = _median_seconds(
      lambda i: versioned_dir.publish(model_dir, os.path.join(work_dir, 'serving')), repeats
    )
  print(
    f'push ({megabytes:.0f} MB model, {os.cpu_count()} cores): TFX copy_dir {tfx_copy:.2f} s, '
    f'atomic publish {atomic:.2f} s ({atomic / tfx_copy:.2f}x)'
  )
  return {
    'push.atomic_s': round(atomic, 2),
    'push.tfx_copy_s': round(tfx_copy, 2),
    'push.atomic_over_tfx_copy': round(atomic / tfx_copy, 2),
    'push.model_mb': round(megabytes),
    'push.cores': os.cpu_count(),
  }
