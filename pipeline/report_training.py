"""The report's training section: examples and weights by class, hyperparameters, last-epoch
figures and the curves the Trainer wrote into its model_run artifact."""

import json
import os
from typing import Dict, List, Optional

import tensorflow as tf

from components import training_report


def _by_class(values: Dict[str, float], spec: str) -> str:
  return ', '.join(f'{name} {value:{spec}}' for name, value in values.items())


def training_section(model_run_uri: Optional[str], report_dir: str) -> List[str]:
  """Hyperparameters, last-epoch figures and the curves the Trainer wrote into model_run."""
  history = training_report.read_history(model_run_uri)
  if history is None:
    return ['## Training', '', 'No training history found for this run.', '']
  series = history.pop('history', {})
  lines = ['## Training', '']
  counts, weights = history.pop('train_class_counts', None), history.pop('class_weights', None)
  if counts:
    lines.append(
      f'- Training examples by class: {_by_class(counts, "d")}; '
      f'class weights of the training loss: {_by_class(weights, ".4f") if weights else "none"}'
    )
  lines += [f'- {key}: `{json.dumps(value)}`' for key, value in sorted(history.items())]
  if series:
    epochs = max(len(values) for values in series.values())
    lines += [
      '',
      f'Last of {epochs} epoch(s): '
      + ', '.join(f'{key} {values[-1]:.4f}' for key, values in sorted(series.items()) if values),
    ]
  lines.append('')
  for name, (title, _, _) in training_report.PLOTS.items():
    source = os.path.join(model_run_uri, name)
    if tf.io.gfile.exists(source):
      tf.io.gfile.copy(source, os.path.join(report_dir, name), overwrite=True)
      lines += [f'![{title}]({name})', '']
  return lines
