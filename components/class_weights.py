"""Class weights against class imbalance, from the label counts of the split the Trainer trains on.

'balanced' is sklearn's compute_class_weight('balanced'): n_samples / (n_classes * count_c), so
every class pulls on the training loss as much as the others; on balanced data every weight is 1.
"""

from typing import Any, Dict, Optional, Sequence

import numpy as np
from sklearn.utils import class_weight
import tensorflow as tf

from components import features
from components import labels

_LABEL_SPEC = {features.LABEL_XF: tf.io.FixedLenFeature([], tf.int64)}
_BATCH = 4096  # records parsed at a time


def count_labels(file_patterns: Sequence[str]) -> np.ndarray:
  """Examples per class (int64 [NUM_CLASSES], label order) in the transformed gzip TFRecord
  files matching `file_patterns`, in one pass that parses the label only."""
  files = [f for pattern in file_patterns for f in tf.io.gfile.glob(pattern)]
  counts = np.zeros(labels.NUM_CLASSES, np.int64)
  if not files:
    return counts
  dataset = tf.data.TFRecordDataset(files, compression_type='GZIP').batch(_BATCH)
  for batch in dataset.map(lambda records: tf.io.parse_example(records, _LABEL_SPEC)):
    found = np.bincount(batch[features.LABEL_XF].numpy(), minlength=labels.NUM_CLASSES)
    if len(found) > labels.NUM_CLASSES:
      raise ValueError(
        f'Label {len(found) - 1} in {file_patterns} is not one of the '
        f'{labels.NUM_CLASSES} classes; re-run the ingestion and the Transform'
      )
    counts += found
  return counts


def compute(mode: str, counts: Sequence[int]) -> Optional[Dict[int, float]]:
  """{label: weight} for Keras model.fit(class_weight=...) from the train split's per-class
  `counts` under the hparams class_weight `mode`; None for 'none'."""
  if mode == 'none':
    return None
  missing = [name for name, count in zip(labels.CLASS_NAMES, counts) if not count]
  if missing:
    raise ValueError(
      f'No {", ".join(missing)} example in the train split, so no balanced class weight for it; '
      'ingest every class or train with --class-weight none'
    )
  classes = np.arange(len(counts))
  y = np.repeat(classes, counts)
  balanced = class_weight.compute_class_weight('balanced', classes=classes, y=y)
  return {int(c): float(w) for c, w in zip(classes, balanced)}


def record(counts: Sequence[int], weights_by_label: Optional[Dict[int, float]]) -> Dict[str, Any]:
  """The training report's entries, by class name: train_class_counts and class_weights (None
  when not weighted)."""
  return dict(
    train_class_counts={name: int(count) for name, count in zip(labels.CLASS_NAMES, counts)},
    class_weights=None
    if weights_by_label is None
    else {labels.CLASS_NAMES[c]: w for c, w in weights_by_label.items()},
  )
