"""A span's drift check result: its distances from the previous accepted span (no TensorFlow)."""

import dataclasses
import json
import os
from typing import List, Optional, Tuple

SPLIT = 'train'  # the split compared: what the Trainer learns from
RESULT_FILE = 'drift.json'  # DriftResult.to_json(), in the DriftReport artifact's folder


@dataclasses.dataclass(frozen=True)
class Distance:
  """One feature's distance between the two spans and its threshold from the schema."""

  feature: str
  measure: str  # 'L-infinity' (categorical) or 'Jensen-Shannon' (numeric)
  distance: float
  threshold: float
  drifted: bool  # TFDV's verdict: distance > threshold

  def describe(self) -> str:
    return f'{self.feature} {self.measure} {self.distance:.3f} > {self.threshold:g}'


@dataclasses.dataclass(frozen=True)
class DriftResult:
  """A span's drift check: its distances from the previous accepted span, or why none."""

  span: int
  previous_span: Optional[int]  # None: no earlier span accepted, nothing compared
  distances: Tuple[Distance, ...] = ()
  allowed: bool = False  # drifted, and trained on anyway (--allow-drift)
  note: str = ''

  @property
  def drifted(self) -> List[Distance]:
    return [d for d in self.distances if d.drifted]

  @property
  def accepted(self) -> bool:
    return not self.drifted or self.allowed

  def summary(self) -> str:
    """One line: what was compared and what drifted."""
    if self.previous_span is None:
      return f'span {self.span}: {self.note}'
    compared = f'span {self.span} vs span {self.previous_span} ({SPLIT} split)'
    note = f'; {self.note}' if self.note else ''
    if not self.drifted:
      return f'{compared}: no drift{note}'
    drifted = ', '.join(d.describe() for d in self.drifted)
    if self.allowed:
      return f'{compared}: drifted, allowed: {drifted}{note}'
    return (
      f'Span {self.span} drifted from span {self.previous_span} ({SPLIT} split): {drifted}{note}; '
      'check the new data, or pass --allow-drift (allow_drift=True in the API) to train on it'
    )

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=2)

  @classmethod
  def from_json(cls, text: str) -> 'DriftResult':
    record = json.loads(text)
    record['distances'] = tuple(Distance(**d) for d in record['distances'])
    return cls(**record)


def first_span(span: int) -> DriftResult:
  return DriftResult(span, None, note='no earlier span accepted: nothing to compare (first span)')


def read(report_uri: str) -> DriftResult:
  """The result in a local DriftReport folder."""
  with open(os.path.join(report_uri, RESULT_FILE), encoding='utf-8') as f:
    return DriftResult.from_json(f.read())
