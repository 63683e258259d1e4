"""Deduplication and the deterministic, stratified, leakage-free split assignment.

1. Identical content (sha256) with different class folders: every copy is quarantined.
2. Files are linked when they share content or a group_regex match; each linked set (a
   "component") goes to one split, so neither duplicates nor a patient's images straddle splits.
3. A component's pool follows its files' folders: Test/ wins over a single root, which wins over
   Train/ (test > eval > train for the kept copy). Inside a component one copy of each content is
   kept, the other copies are reported as duplicates of it.
4. Per pool and class, the split sizes are apportioned from the ratios (largest remainder; every
   split gets at least one file of a class that has enough files), then the components, ordered by
   sha256(split_seed + their smallest content hash or group), fill the split with the most room left.
The result depends only on the set of files (names, folders, contents), not on listing order,
machine or run.
"""
import collections
import dataclasses
import hashlib
import math
from typing import Dict, List, Sequence

from components import labels
from components.ingestion.inspection import Inspected
from components.ingestion.options import IngestOptions

INGESTED, QUARANTINED, DUPLICATE, IGNORED = 'ingested', 'quarantined', 'duplicate', 'ignored'
CONFLICTING_LABELS = 'conflicting_labels'
DUPLICATE_WITHIN_SPLIT = 'duplicate_within_split'
DUPLICATE_ACROSS_SPLITS = 'duplicate_across_splits'

ROLE_PRIORITY = ('test', 'any', 'train')  # the pool of a component whose files come from several


@dataclasses.dataclass(frozen=True, slots=True)
class Assignment:
  path: str
  status: str             # INGESTED, QUARANTINED or DUPLICATE
  split: str = ''         # for INGESTED
  reason: str = ''
  detail: str = ''
  duplicate_of: str = ''  # for DUPLICATE: the path of the kept copy


def role_fractions(role: str, options: IngestOptions) -> Dict[str, float]:
  """The splits a pool of files feeds, with their target shares."""
  if role == 'test':
    return {'test': 1.0}
  if role == 'train':
    return {'train': 1.0 - options.eval_fraction, 'eval': options.eval_fraction}
  return dict(zip(('train', 'eval', 'test'), options.split_ratios))


def apportion(total: int, fractions: Sequence[float]) -> List[int]:
  """Splits `total` by `fractions` (largest remainder); each positive share gets >= 1 when possible."""
  exact = [total * f for f in fractions]
  counts = [math.floor(x + 1e-9) for x in exact]
  by_remainder = sorted(range(len(exact)), key=lambda i: (counts[i] - exact[i], i))
  for i in by_remainder[:total - sum(counts)]:
    counts[i] += 1
  wanted = [i for i, f in enumerate(fractions) if f > 0]
  if total >= len(wanted):
    for i in wanted:
      if counts[i] == 0:
        donor = max(range(len(counts)), key=lambda j: (counts[j], -j))
        counts[donor] -= 1
        counts[i] += 1
  return counts


class _Components:
  """Union-find over content hashes and group names."""

  def __init__(self):
    self._parent = {}

  def find(self, key: str) -> str:
    self._parent.setdefault(key, key)
    while self._parent[key] != key:
      self._parent[key] = self._parent[self._parent[key]]
      key = self._parent[key]
    return key

  def union(self, a: str, b: str):
    ra, rb = self.find(a), self.find(b)
    if ra != rb:
      self._parent[max(ra, rb)] = min(ra, rb)


def _keys(item: Inspected) -> List[str]:
  return [f'sha:{item.sha256}'] + ([f'group:{item.entry.group}'] if item.entry.group else [])


def _quarantine_conflicts(items: List[Inspected], out: Dict[str, Assignment]) -> List[Inspected]:
  by_sha = collections.defaultdict(list)
  for item in items:
    by_sha[item.sha256].append(item)
  kept = []
  for same in by_sha.values():
    if len({i.entry.label for i in same}) > 1:
      copies = ', '.join(f'{i.entry.path} ({labels.CLASS_NAMES[i.entry.label]})' for i in same)
      for i in same:
        out[i.entry.path] = Assignment(i.entry.path, QUARANTINED, reason=CONFLICTING_LABELS,
                                       detail=f'identical content under different classes: {copies}')
    else:
      kept.extend(same)
  return kept


def _assign_pool(components: List[List[Inspected]], fractions: Dict[str, float]) -> List[str]:
  """The split of each component (given in hash order), filling per-class quotas."""
  splits = list(fractions)
  per_class = [collections.Counter(i.entry.label for i in comp) for comp in components]
  totals = sum(per_class, collections.Counter())
  quota = {c: dict(zip(splits, apportion(n, [fractions[s] for s in splits]))) for c, n in totals.items()}
  filled = {c: dict.fromkeys(splits, 0) for c in totals}
  chosen = []
  for counts in per_class:
    room = {s: sum(n * (quota[c][s] - filled[c][s]) for c, n in counts.items()) for s in splits}
    split = max(splits, key=lambda s: (room[s], -splits.index(s)))
    for c, n in counts.items():
      filled[c][split] += n
    chosen.append(split)
  return chosen


def plan(inspected: Sequence[Inspected], options: IngestOptions) -> Dict[str, Assignment]:
  """The fate of every inspected candidate, keyed by path."""
  out = {}
  valid = []
  for item in sorted(inspected, key=lambda i: i.entry.path):
    if item.reason:
      out[item.entry.path] = Assignment(item.entry.path, QUARANTINED, reason=item.reason, detail=item.detail)
    else:
      valid.append(item)
  valid = _quarantine_conflicts(valid, out)

  links = _Components()
  for item in valid:
    first, *rest = _keys(item)
    for key in rest:
      links.union(first, key)
  members = collections.defaultdict(list)
  for item in valid:
    members[links.find(_keys(item)[0])].append(item)

  pools = collections.defaultdict(list)  # role -> [(order key, kept copies, duplicates)]
  for root, items in members.items():
    role = min((i.entry.role for i in items), key=ROLE_PRIORITY.index)
    by_sha = collections.defaultdict(list)
    for item in items:
      by_sha[item.sha256].append(item)
    kept, duplicates = [], []
    for copies in by_sha.values():
      copies.sort(key=lambda i: (ROLE_PRIORITY.index(i.entry.role), i.entry.path))
      kept.append(copies[0])
      duplicates.extend((copy, copies[0]) for copy in copies[1:])
    order = hashlib.sha256(f'{options.split_seed}\0{root}'.encode()).hexdigest()
    pools[role].append((order, kept, duplicates))

  for role, components in pools.items():
    components.sort(key=lambda c: c[0])
    for (_, kept, duplicates), split in zip(components, _assign_pool([c[1] for c in components],
                                                                     role_fractions(role, options))):
      for item in kept:
        out[item.entry.path] = Assignment(item.entry.path, INGESTED, split=split)
      for copy, original in duplicates:
        reason = DUPLICATE_WITHIN_SPLIT if copy.entry.role == original.entry.role else DUPLICATE_ACROSS_SPLITS
        out[copy.entry.path] = Assignment(copy.entry.path, DUPLICATE, reason=reason,
                                          detail=f'same content as {original.entry.path}',
                                          duplicate_of=original.entry.path)
  return out
