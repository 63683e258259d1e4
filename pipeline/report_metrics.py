"""The report's test-split metric sections: the classification report table, the confusion
matrix heatmap, the comparison with the blessed baseline and the metrics by source and subgroup."""

from typing import Dict, List

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt
import numpy as np

from components import labels
from components import markdown_text
from components.evaluation import classification_report
from components.evaluation import eval_config as eval_config_lib
from components.evaluation import results
from pipeline import report_format

CONFUSION_MATRIX_PNG = 'confusion_matrix.png'
PROPORTIONS = ('precision', 'recall', 'specificity', 'npv')  # ClassFigures with an interval


def classification_report_table(report: classification_report.ClassificationReport) -> List[str]:
  """Per class at argmax, each proportion with its 95% Wilson interval; the averages as in the
  seed notebook's classification report; then the accuracy with its interval."""
  rows = [
    [name]
    + [report_format.with_ci(getattr(figures, p)) for p in PROPORTIONS]
    + [report_format.fmt(figures.f1), f'{figures.support:g}']
    for name, figures in zip(report.class_names, report.per_class)
  ]
  rows += [
    [
      name,
      report_format.fmt(scores.precision),
      report_format.fmt(scores.recall),
      '',
      '',
      report_format.fmt(scores.f1),
      f'{scores.support:g}',
    ]
    for name, scores in (('macro avg', report.macro_avg), ('weighted avg', report.weighted_avg))
  ]
  header = [
    '',
    'precision (95% CI)',
    'recall (95% CI)',
    'specificity (95% CI)',
    'NPV (95% CI)',
    'f1-score',
    'support',
  ]
  return report_format.table(header, rows) + [
    '',
    f'Accuracy {report_format.fmt(report.accuracy.value)} '
    f'(95% CI {report_format.interval(report.accuracy.ci, 3)}), '
    f'{report.accuracy.trials:g} images.',
  ]


def save_confusion_matrix_png(matrix: np.ndarray, path: str) -> None:
  """Heatmap of counts (rows: true class, columns: predicted class)."""
  fig, ax = plt.subplots(figsize=(5.5, 4.5))
  image = ax.imshow(matrix, cmap='Blues')
  ticks = range(len(labels.CLASS_NAMES))
  ax.set_xticks(ticks, labels.CLASS_NAMES, rotation=20)
  ax.set_yticks(ticks, labels.CLASS_NAMES)
  ax.set_xlabel('predicted')
  ax.set_ylabel('true')
  ax.set_title('Confusion matrix (test split)')
  for (i, j), count in np.ndenumerate(matrix):
    ax.text(
      j,
      i,
      f'{count:g}',
      ha='center',
      va='center',
      color='white' if count > matrix.max() / 2 else 'black',
    )
  fig.colorbar(image, ax=ax)
  fig.savefig(path, dpi=100, bbox_inches='tight')
  plt.close(fig)


def baseline_section(
  overall: Dict[results.MetricId, float], candidate: str, baseline: str, baseline_uri: str
) -> List[str]:
  """The candidate's overall figures next to the blessed baseline's, and the change."""
  metrics = (
    [results.MetricId(eval_config_lib.ACCURACY)]
    + [
      results.MetricId(eval_config_lib.ARGMAX_RECALL, class_id=i) for i in range(labels.NUM_CLASSES)
    ]
    + [
      results.MetricId(eval_config_lib.ARGMAX_F1, macro=True),
      results.MetricId(eval_config_lib.AUC, macro=True),
    ]
  )
  rows = []
  for metric in metrics:
    new = overall.get(metric._replace(model_name=candidate))
    old = overall.get(metric._replace(model_name=baseline))
    change = new - old if new is not None and old is not None else None
    rows.append(
      [
        report_format.metric_name(metric),
        report_format.fmt(new),
        report_format.fmt(old),
        report_format.fmt(change, signed=True),
      ]
    )
  return (
    ['## Comparison with the blessed baseline', '', f'Baseline model: `{baseline_uri}`', '']
    + report_format.table(['metric', 'candidate', 'baseline', 'change'], rows)
    + ['']
  )


def slices_section(metrics: Dict[str, Dict[results.MetricId, float]], model: str) -> List[str]:
  """Accuracy and COVID recall with their intervals, and macro F1, per slice: by source and by
  subgroup (view position, sex, age band, manufacturer)."""
  with_ci = [
    results.MetricId(eval_config_lib.ACCURACY, model_name=model),
    results.MetricId(eval_config_lib.ARGMAX_RECALL, class_id=labels.COVID, model_name=model),
  ]
  f1 = results.MetricId(eval_config_lib.ARGMAX_F1, macro=True, model_name=model)
  rows = []
  for slice_name, values in sorted(metrics.items()):
    count = values.get(results.MetricId(eval_config_lib.EXAMPLE_COUNT, model_name=model), 0.0)
    cells = [markdown_text.escape(slice_name), f'{count:g}']
    for metric in with_ci:
      ends = [
        values.get(metric._replace(name=metric.name + end))
        for end in (eval_config_lib.LOWER, eval_config_lib.UPPER)
      ]
      ci = classification_report.Interval(*ends) if None not in ends else None
      cells.append(f'{report_format.fmt(values.get(metric))} ({report_format.interval(ci, 3)})')
    rows.append(cells + [report_format.fmt(values.get(f1))])
  return (
    [
      '## By source and subgroup',
      '',
      'Reported, not gated (a slice may be small or hold one class); `unknown`: the DICOM file '
      'or the metadata CSV did not say.',
      '',
    ]
    + report_format.table(
      ['slice', 'examples']
      + [f'{report_format.metric_name(m)} (95% CI)' for m in with_ci]
      + [report_format.metric_name(f1)],
      rows,
    )
    + ['']
  )
