"""The synthetic demo dataset: layout, determinism, sizes, and class structure a small model
can learn."""

import glob
import os

import numpy as np
from PIL import Image

from components import demo_data
from components import labels


def _files(root):
  return sorted(os.path.relpath(p, root) for p in glob.glob(os.path.join(root, '*', '*', '*.png')))


def _read(root, rel):
  with open(os.path.join(root, rel), 'rb') as f:
    return f.read()


def test_layout_counts_sizes_and_byte_identical_regeneration(tmp_path):
  a, b, c = (str(tmp_path / n) for n in 'abc')
  counts = demo_data.generate(
    a, train_per_class=3, test_per_class=2, seed=7, min_size=40, max_size=72
  )
  assert counts == {
    'Train': dict.fromkeys(labels.CLASS_NAMES, 3),
    'Test': dict.fromkeys(labels.CLASS_NAMES, 2),
  }
  files = _files(a)
  assert len(files) == 15
  assert {f.split(os.sep)[1] for f in files} == set(labels.CLASS_NAMES)  # incl. 'VIRAL PNEUMONIA'
  assert os.path.isdir(os.path.join(a, 'Train', 'VIRAL PNEUMONIA'))
  for rel in files:
    with Image.open(os.path.join(a, rel)) as image:
      assert image.format == 'PNG' and image.mode == 'L'
      assert all(40 <= side <= 72 for side in image.size)
  assert len({Image.open(os.path.join(a, rel)).size for rel in files}) > 1

  demo_data.generate(
    b, train_per_class=3, test_per_class=2, seed=7, min_size=40, max_size=72, processes=2
  )
  assert _files(b) == files and all(_read(a, f) == _read(b, f) for f in files)
  demo_data.generate(c, train_per_class=3, test_per_class=2, seed=8, min_size=40, max_size=72)
  assert all(_read(a, f) != _read(c, f) for f in files)


def test_classes_are_separable_at_32_pixels(tmp_path):
  root = str(tmp_path / 'demo')
  demo_data.generate(root, train_per_class=12, test_per_class=6, min_size=64, max_size=128)

  def load(split):
    x, y = [], []
    for label, name in enumerate(labels.CLASS_NAMES):
      for path in sorted(glob.glob(os.path.join(root, split, name, '*.png'))):
        with Image.open(path) as image:
          pixels = np.asarray(image.resize((32, 32), Image.BILINEAR), np.float32).ravel()
        x.append(
          (pixels - pixels.mean()) / pixels.std()
        )  # per-image standardization evens out exposure
        y.append(label)
    return np.array(x), np.array(y)

  x_train, y_train = load('Train')
  x_test, y_test = load('Test')
  centroids = np.stack([x_train[y_train == c].mean(0) for c in range(labels.NUM_CLASSES)])
  predicted = np.argmin(((x_test[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
  assert (predicted == y_test).mean() >= 0.9  # even a nearest-centroid classifier separates them
