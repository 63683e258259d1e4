"""The report's calibration: the Trainer's temperature and eval-split figures before and after
it, the test split's ECE and Brier score from the Evaluator, the reliability diagram."""

import os
from typing import Any, Dict, List, Optional

import tensorflow as tf

from components import training_report
from components.evaluation import eval_config as eval_config_lib
from components.evaluation import results
from pipeline import report_format


def _count(value: Optional[float]) -> Optional[int]:
  """TFMA stores counts as floats; the JSON gives them as integers."""
  return None if value is None else int(value)


def calibration_json(
  record: Optional[Dict[str, Any]], overall: Dict[results.MetricId, float], model: str
) -> Optional[Dict[str, Any]]:
  """The eval-split figures of the Trainer's `record` (where T was fitted), and under 'test' the
  Evaluator's figures of the exported, temperature-scaled model on the test split."""
  if record is None:
    return None
  return {
    'split': 'eval',
    **record,
    'test': {
      'split': 'test',
      'images': _count(
        overall.get(results.MetricId(eval_config_lib.EXAMPLE_COUNT, model_name=model))
      ),
      'ece': overall.get(results.MetricId(eval_config_lib.TOP_LABEL_ECE, model_name=model)),
      'brier': overall.get(results.MetricId(eval_config_lib.BRIER, model_name=model)),
    },
  }


def calibration_section(
  figures: Optional[Dict[str, Any]], model_run_uri: Optional[str], report_dir: str
) -> List[str]:
  """The figures of `calibration_json` as a table, and the reliability diagram copied from
  model_run into report_dir."""
  lines = ['## Calibration', '']
  if figures is None:
    return lines + [
      'No calibration record for this model (trained without temperature scaling).',
      '',
    ]
  test = figures['test']
  if figures.get('not_fitted'):
    how = f'Temperature scaling: not fitted, {figures["not_fitted"]}.'
  else:
    how = (
      f'Temperature scaling: T = {figures["temperature"]:.4g}, fitted on the eval split '
      f'({figures["images"]:g} images) to minimise the NLL and folded into the exported model: '
      'every signature serves softmax(logits / T), with the same argmax.'
    )
  lines += [
    f'{how} The Evaluator scores the exported model, so the test split has no "before" figures. '
    'ECE: top label, 15 equal-width bins.',
    '',
  ]
  rows = [
    [
      f'eval ({figures["images"]:g} images)',
      name,
      report_format.fmt(figures[f'{key}_before']),
      report_format.fmt(figures[key]),
    ]
    for key, name in (('nll', 'NLL'), ('ece', 'top-label ECE'), ('brier', 'Brier score'))
  ]
  test_images = 'n/a' if test['images'] is None else f'{test["images"]:g}'
  rows += [
    [f'test ({test_images} images)', name, 'n/a', report_format.fmt(test[key])]
    for key, name in (('ece', 'top-label ECE'), ('brier', 'Brier score'))
  ]
  lines += report_format.table(['split', 'figure', 'before scaling', 'after scaling'], rows) + ['']
  source = os.path.join(model_run_uri or '', training_report.RELIABILITY_PNG)
  if model_run_uri and tf.io.gfile.exists(source):
    tf.io.gfile.copy(source, os.path.join(report_dir, training_report.RELIABILITY_PNG), True)
    lines += [f'![Reliability diagram, eval split]({training_report.RELIABILITY_PNG})', '']
  return lines
