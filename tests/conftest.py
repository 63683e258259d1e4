"""Test setup: quiet TensorFlow logs, no GPU; `components` sets Keras 2 for TensorFlow."""

import os

import components  # noqa: F401 (sets TF_USE_LEGACY_KERAS before any test uses tf.keras)

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')
