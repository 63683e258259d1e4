"""Class x source association per split, and the test classes confounded with their source.

Public COVID sets merge many hospitals and repositories, and a model can learn the source instead
of the disease. When every test image of a class comes from sources holding no test image of
another class, the test cannot tell the two apart: ingestion refuses such data unless allowed.

The summary's `confounding` entry:
  {'train' | 'eval' | 'test': {'table': {source: {class: images}},
                               'cramers_v': float or None, 'note': why V is None, or None},
   'confounded_classes': [class, ...],  # test classes whose sources hold no other test class
   'allowed': bool,                     # IngestOptions.allow_confounded_sources
   'warning': str or None}              # the finding in words, when a class is confounded
"""

from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np
from scipy.stats import contingency

from components import labels
from components.ingestion.options import SPLITS
from components.ingestion.options import TEST

Table = Mapping[str, Mapping[str, int]]  # source -> class name -> ingested images


class ConfoundedSourcesError(ValueError):
  """A test class comes only from sources holding no other test class: the test would measure the
  source."""


def cramers_v(table: Table) -> Tuple[Optional[float], Optional[str]]:
  """Cramér's V of the class x source table (scipy), or None and why it is undefined."""
  observed = np.array(
    [[row.get(c, 0) for c in labels.CLASS_NAMES] for row in table.values()], dtype=np.int64
  ).reshape(len(table), labels.NUM_CLASSES)
  observed = observed[observed.sum(axis=1) > 0][:, observed.sum(axis=0) > 0]
  if not observed.size:
    return None, 'no images'
  if observed.shape[0] < 2:
    return None, 'one source: the association needs two or more sources'
  if observed.shape[1] < 2:
    return None, 'one class: the association needs two or more classes'
  return float(contingency.association(observed, method='cramer')), None


def confounded_classes(table: Table) -> Dict[str, Dict[str, int]]:
  """class -> {source: images} for each class all of whose images come from sources holding no
  image of another class, while other classes have images (from other sources, then)."""
  found = {}
  for name in labels.CLASS_NAMES:
    sources = {s: row.get(name, 0) for s, row in table.items() if row.get(name, 0)}
    others = sum(n for row in table.values() for c, n in row.items() if c != name)
    if sources and others and all(sum(table[s].values()) == n for s, n in sources.items()):
      found[name] = sources
  return found


def _warning(confounded: Dict[str, Dict[str, int]]) -> str:
  classes = '; '.join(
    f'{name} only from '
    + ', '.join(f'{s} ({n} image{"s" * (n != 1)})' for s, n in sorted(sources.items()))
    for name, sources in confounded.items()
  )
  return (
    f'Test classes confounded with their source: {classes}; these sources hold no test image of '
    f'another class, so the test result may measure the source, not the class'
  )


def summarize(tables: Mapping[str, Table], allowed: bool) -> Dict:
  """The summary's `confounding` entry (see the module docstring) from each split's table."""
  entry = {}
  for split in SPLITS:
    table = {s: dict(row) for s, row in sorted(tables.get(split, {}).items())}
    v, note = cramers_v(table)
    entry[split] = {'table': table, 'cramers_v': v, 'note': note}
  confounded = confounded_classes(entry[TEST]['table'])
  entry.update(
    confounded_classes=list(confounded),
    allowed=allowed,
    warning=_warning(confounded) if confounded else None,
  )
  return entry


def refusal(entry: Dict) -> Optional[ConfoundedSourcesError]:
  """The error for confounded test classes, unless allowed."""
  if not entry['confounded_classes'] or entry['allowed']:
    return None
  return ConfoundedSourcesError(
    f'{entry["warning"]}. Mix sources within each class of the test split, or pass '
    f'--allow-confounded-sources (allow_confounded_sources=True in the API) to go on with this '
    f'warning in the report.'
  )


def describe(entry: Dict) -> List[str]:
  """Lines for the log: each split's sources and Cramér's V, then the warning if any."""
  lines = []
  for split in SPLITS:
    figures = entry[split]
    v = figures['note'] if figures['cramers_v'] is None else f'{figures["cramers_v"]:.3f}'
    sources = ', '.join(f'{s} {sum(row.values())}' for s, row in figures['table'].items())
    lines.append(f"  {split} sources: {sources or 'none'}; class x source Cramér's V: {v}")
  if entry['warning']:
    lines.append(f'  WARNING: {entry["warning"]}' + (' (allowed)' if entry['allowed'] else ''))
  return lines
