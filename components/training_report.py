"""Training history as JSON and the seed notebook's plots as PNG files; the calibration record.

Written by the Trainer into its model_run artifact; read back by the run report and the model card.
"""

import io
import json
import os
from typing import Any, Dict, List, Mapping, Optional

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt
import tensorflow as tf

HISTORY_FILE = 'history.json'
CALIBRATION_FILE = 'calibration.json'  # components.calibration.calibration_record, eval split
RELIABILITY_PNG = 'reliability.png'  # its reliability diagram, before and after scaling
# The seed's three figures: file name -> (title, [(history key, legend label)], y label).
PLOTS = {
  'accuracy.png': (
    'Model accuracy',
    [('accuracy', 'train'), ('val_accuracy', 'validation')],
    'accuracy',
  ),
  'loss.png': ('Training loss', [('loss', 'train')], 'loss'),
  'val_loss.png': ('Validation loss', [('val_loss', 'validation')], 'loss'),
}


def _plot_png(
  title: str, series: List[tuple], ylabel: str, history: Mapping[str, List[float]]
) -> bytes:
  fig, ax = plt.subplots(figsize=(6, 4))
  for key, label in series:
    values = history[key]
    ax.plot(range(1, len(values) + 1), values, marker='o', label=label)
  ax.set_title(title)
  ax.set_xlabel('epoch')
  ax.set_ylabel(ylabel)
  ax.grid(True, alpha=0.3)
  ax.legend()
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=100, bbox_inches='tight')
  plt.close(fig)
  return buffer.getvalue()


def write_report(
  output_dir: str, history: Mapping[str, List[float]], **metadata: Any
) -> Dict[str, str]:
  """Writes HISTORY_FILE ({**metadata, 'history': ...}) and the PLOTS whose series exist.

  Returns {file name: path} of what was written. `output_dir` may be any tf.io.gfile path.
  """
  tf.io.gfile.makedirs(output_dir)
  history = {k: [float(v) for v in values] for k, values in history.items()}
  paths = {HISTORY_FILE: os.path.join(output_dir, HISTORY_FILE)}
  with tf.io.gfile.GFile(paths[HISTORY_FILE], 'w') as f:
    json.dump(dict(metadata, history=history), f, indent=2, sort_keys=True)
  for name, (title, series, ylabel) in PLOTS.items():
    if all(history.get(key) for key, _ in series):
      paths[name] = os.path.join(output_dir, name)
      with tf.io.gfile.GFile(paths[name], 'wb') as f:
        f.write(_plot_png(title, series, ylabel, history))
  return paths


def write_calibration(
  output_dir: str, record: Mapping[str, Any], diagram_png: bytes
) -> Dict[str, str]:
  """Writes CALIBRATION_FILE (`record`) and RELIABILITY_PNG; returns {file name: path}."""
  tf.io.gfile.makedirs(output_dir)
  paths = {name: os.path.join(output_dir, name) for name in (CALIBRATION_FILE, RELIABILITY_PNG)}
  with tf.io.gfile.GFile(paths[CALIBRATION_FILE], 'w') as f:
    json.dump(dict(record), f, indent=2, sort_keys=True)
  with tf.io.gfile.GFile(paths[RELIABILITY_PNG], 'wb') as f:
    f.write(diagram_png)
  return paths


def _read_json(model_run_uri: Optional[str], name: str) -> Optional[Dict[str, Any]]:
  path = os.path.join(model_run_uri or '', name)
  if not model_run_uri or not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def read_history(model_run_uri: Optional[str]) -> Optional[Dict[str, Any]]:
  """HISTORY_FILE of a model_run folder (metadata and 'history'), or None when it has none."""
  return _read_json(model_run_uri, HISTORY_FILE)


def read_calibration(model_run_uri: Optional[str]) -> Optional[Dict[str, Any]]:
  """The calibration record (eval split) of a model_run folder, or None when the model has none
  (trained without temperature scaling)."""
  return _read_json(model_run_uri, CALIBRATION_FILE)
