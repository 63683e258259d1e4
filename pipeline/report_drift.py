"""The report's drift section: the span's drift check against the previous accepted span
(components/drift): the verdict and each compared feature's distance and threshold."""

import dataclasses
from typing import Any, Dict, List, Optional

from components import markdown_text
from components.drift.result import DriftResult
from pipeline import report_format


def drift_section(result: Optional[DriftResult]) -> List[str]:
  """The verdict in one line, then each feature's distance, threshold and whether it drifted."""
  lines = ['## Drift between spans', '']
  if result is None:
    return lines + ['No drift check recorded for this run.', '']
  lines += [markdown_text.escape(result.summary()), '']
  if result.distances:
    lines += report_format.table(
      ['feature', 'measure', 'distance', 'threshold', 'drifted'],
      [
        [
          d.feature,
          d.measure,
          f'{d.distance:.3f}',
          f'{d.threshold:g}',
          'yes' if d.drifted else 'no',
        ]
        for d in result.distances
      ],
    ) + ['']
  return lines


def drift_json(result: Optional[DriftResult]) -> Optional[Dict[str, Any]]:
  return dict(dataclasses.asdict(result), summary=result.summary()) if result else None
