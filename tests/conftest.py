"""Test setup: quiet TensorFlow logs, no GPU; `components` sets Keras 2 for TensorFlow."""

import os

import components  # noqa: F401 (sets TF_USE_LEGACY_KERAS before any test uses tf.keras)

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')


def pytest_collection_modifyitems(items):
  """Whole-pipeline (e2e) tests first: with `--dist loadfile --no-loadscope-reorder` (make test)
  the two workers start the slowest files at once and share the others as they free up."""
  items.sort(key=lambda item: item.get_closest_marker('e2e') is None)
