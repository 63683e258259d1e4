"""The report's sources and confounding section: the class x source association of the ingested
data per split (Cramér's V and the table) and the confounding warning."""

from typing import Any, Dict, List, Optional

from components import labels
from components import markdown_text
from components.ingestion.options import SPLITS
from pipeline import report_format


def sources_section(confounding: Optional[Dict[str, Any]]) -> List[str]:
  """Class x source association per split (Cramér's V and the table), and the confounding
  warning."""
  lines = ['## Sources and confounding', '']
  if confounding is None:
    return lines + ['No source figures recorded for the ingested data of this run.', '']
  if confounding['warning']:  # an evaluated run: ingestion went on, so it was allowed
    warning = markdown_text.escape(confounding['warning'])
    lines += [f'**WARNING**: {warning} (allowed by --allow-confounded-sources).', '']
  lines += [
    "Cramér's V of class x source: 0 when every source holds the classes alike, 1 when each "
    'source holds one class.',
    '',
  ]
  for split in SPLITS:
    figures = confounding[split]
    v = figures['note'] if figures['cramers_v'] is None else f'{figures["cramers_v"]:.3f}'
    lines += [f"{split}: Cramér's V {v}", '']
    lines += report_format.table(
      ['source'] + list(labels.CLASS_NAMES),
      [
        [markdown_text.escape(source)] + [f'{row.get(c, 0)}' for c in labels.CLASS_NAMES]
        for source, row in figures['table'].items()
      ],
    ) + ['']
  return lines
