"""The report's masking audit (components/audit.py): accuracy and COVID recall as served, with the
lung fields hidden and with the border band hidden, chance, and whether a shortcut is suspected
(the figures of components.evaluation.audit_figures)."""

from typing import Any, Dict, List, Optional

from components import audit
from pipeline import report_format


def audit_section(figures: Optional[Dict[str, Any]]) -> List[str]:
  """The audit's table, its verdict in words and the regions it hid."""
  lines = ['## Shortcut audit (masking)', '']
  if figures is None:
    return lines + ['Not audited: this evaluation predates the masking audit.', '']
  fmt = report_format.fmt
  lines += report_format.table(
    ['test split', 'accuracy', 'COVID recall'],
    [
      ['as served', fmt(figures['accuracy']), fmt(figures['covid_recall'])],
      [
        'lung fields hidden',
        fmt(figures['lungs_hidden_accuracy']),
        fmt(figures['lungs_hidden_covid_recall']),
      ],
      [
        'border band hidden',
        fmt(figures['borders_hidden_accuracy']),
        fmt(figures['borders_hidden_covid_recall']),
      ],
    ],
  )
  chance, margin = figures['chance'], figures['shortcut_margin']
  rule = f'rule: shortcut suspected above chance {chance:.2f} + {margin:g}'
  if figures['shortcut_suspected']:
    verdict = (
      f'**Shortcut suspected**: with the lung fields hidden the model still reaches accuracy '
      f'{figures["lungs_hidden_accuracy"]:.2f} ({rule}); it classifies from something other than '
      'the lungs (markers, position, the source). '
      + (
        'Not blessed by default.'
        if figures['gated']
        else 'Blessing allowed anyway (`--allow-shortcuts`).'
      )
    )
  else:
    verdict = (
      f'No shortcut suspected: with the lung fields hidden, accuracy falls to '
      f'{figures["lungs_hidden_accuracy"]:.2f} ({rule}).'
    )
  lines += ['', verdict, '', 'Hidden regions (each replaced by the image mean):', '']
  regions = figures['regions']
  lines += (
    [f'- {line}' for line in audit.describe(audit.Regions.from_json(regions))]
    if regions
    else ['- not recorded with this model']
  )
  return lines + ['']
