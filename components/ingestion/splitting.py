"""Deduplication and the deterministic, stratified, leakage-free split assignment.

1. Identical content (sha256) with different class folders: every copy is quarantined.
2. Files are linked when they share content, a group_regex match or a patient (the salted hash
   of a DICOM PatientID or of the metadata CSV's patient_id); each linked set (a "component") goes
   to one split, so neither duplicates nor a patient's images straddle splits.
3. A component's pool follows its files' folders: Test/ wins over a single root, which wins over
   Train/ (test > eval > train for the kept copy). Inside a component one copy of each content is
   kept, the other copies are reported as duplicates of it.
4. Per pool and stratum, the split sizes are apportioned from the ratios (largest remainder;
   every split gets at least one file of a stratum that has enough files), then the components,
   ordered by sha256(split_seed + their smallest content hash or group), fill the split with the
   most room left. A stratum is a class and source with files enough for every split of the pool;
   a class's other files (of smaller sources) form one stratum. Stratifying by source keeps each
   source's share of a class alike in every split, so a random split does not make a test class
   come from one source only (confounding.py); with a single source it is stratifying by class.
The result depends only on the set of files (names, folders, contents), not on listing order,
machine or run. The plan is SQL on the run's FileTable, so it holds no per-file Python objects.
"""

import hashlib
import itertools
import math
from typing import Dict, Iterable, Iterator, List, Sequence, Tuple

from components import labels
from components.ingestion.file_table import DUPLICATE
from components.ingestion.file_table import FileTable
from components.ingestion.file_table import INGESTED
from components.ingestion.file_table import QUARANTINED
from components.ingestion.options import IngestOptions
from components.ingestion.options import SPLITS

CONFLICTING_LABELS = 'conflicting_labels'
DUPLICATE_WITHIN_SPLIT = 'duplicate_within_split'
DUPLICATE_ACROSS_SPLITS = 'duplicate_across_splits'

ROLE_PRIORITY = ('test', 'any', 'train')  # the pool of a component whose files come from several
_RANK = (
  'CASE role '
  + ' '.join(f"WHEN '{role}' THEN {i} " for i, role in enumerate(ROLE_PRIORITY))
  + 'END'
)
_OPEN = 'status IS NULL'  # candidates without a fate yet
_STRATUM = (  # files apportioned together (temp.strata: the class and source strata of a pool)
  "label || ':' || CASE WHEN (label, source) IN temp.strata THEN source ELSE '' END"
)


def role_fractions(role: str, options: IngestOptions) -> Dict[str, float]:
  """The splits a pool of files feeds, with their target shares."""
  if role == 'test':
    return {'test': 1.0}
  if role == 'train':
    return {'train': 1.0 - options.eval_fraction, 'eval': options.eval_fraction}
  return dict(zip(SPLITS, options.split_ratios))


def apportion(total: int, fractions: Sequence[float]) -> List[int]:
  """Splits `total` by `fractions` (largest remainder); each positive share gets >= 1 when
  possible."""
  exact = [total * f for f in fractions]
  counts = [math.floor(x + 1e-9) for x in exact]
  by_remainder = sorted(range(len(exact)), key=lambda i: (counts[i] - exact[i], i))
  for i in by_remainder[: total - sum(counts)]:
    counts[i] += 1
  wanted = [i for i, f in enumerate(fractions) if f > 0]
  if total >= len(wanted):
    for i in wanted:
      if counts[i] == 0:
        donor = max(range(len(counts)), key=lambda j: (counts[j], -j))
        counts[donor] -= 1
        counts[i] += 1
  return counts


def _quarantine_conflicts(db) -> None:
  conflicts = db.execute(
    f'SELECT sha256 FROM files WHERE {_OPEN} GROUP BY sha256 HAVING COUNT(DISTINCT label) > 1'
  )
  for (sha256,) in conflicts.fetchall():
    same = db.execute(
      f'SELECT path, label FROM files WHERE {_OPEN} AND sha256 = ? ORDER BY path', (sha256,)
    )
    copies = ', '.join(f'{path} ({labels.CLASS_NAMES[label]})' for path, label in same)
    db.execute(
      f'UPDATE files SET status = ?, fate_reason = ?, fate_detail = ? WHERE {_OPEN} AND sha256 = ?',
      (
        QUARANTINED,
        CONFLICTING_LABELS,
        f'identical content under different classes: {copies}',
        sha256,
      ),
    )


def _link_components(db) -> None:
  """Each file's component: the smallest key ('group:<g>' < 'patient:<hash>' < 'sha:<hash>')
  linked to it, by propagating minima through shared contents, groups and patients until nothing
  changes."""
  db.execute(f"""UPDATE files SET component = CASE WHEN "group" != '' THEN 'group:' || "group"
                 WHEN patient_hash != '' THEN 'patient:' || patient_hash
                 ELSE 'sha:' || sha256 END WHERE {_OPEN}""")
  changed = True
  while changed:
    changed = False
    for key, linked in (
      ('sha256', "sha256 != ''"),
      ('"group"', '"group" != \'\''),
      ('patient_hash', "patient_hash != ''"),
    ):
      changed |= (
        db.execute(
          f"""
          UPDATE files SET component = least.component
          FROM (SELECT {key} AS k, MIN(component) AS component FROM files WHERE {_OPEN} AND """
          f"""{linked} GROUP BY {key})
            AS least
          WHERE {_OPEN} AND files.{key} = least.k AND files.component > least.component"""
        ).rowcount
        > 0
      )


def _mark_duplicates(db) -> None:
  """Keeps the first copy of each content by (role priority, path); the others become DUPLICATE."""
  db.execute(
    f"""
      UPDATE files SET status = ?, duplicate_of = copies.kept, """
    f"""fate_detail = 'same content as ' || copies.kept
      FROM (SELECT path, FIRST_VALUE(path) OVER (PARTITION BY sha256 ORDER BY {_RANK}, path) AS kept
            FROM files WHERE {_OPEN}) AS copies
      WHERE files.path = copies.path AND copies.kept != copies.path""",
    (DUPLICATE,),
  )
  db.execute(
    """
      UPDATE files SET fate_reason = CASE WHEN role = (SELECT role FROM files AS kept """
    """WHERE kept.path = files.duplicate_of)
                                     THEN ? ELSE ? END
      WHERE status = ?""",
    (DUPLICATE_WITHIN_SPLIT, DUPLICATE_ACROSS_SPLITS, DUPLICATE),
  )


def _fill_pool(
  counts: Iterable, fractions: Dict[str, float], totals: Dict[str, int]
) -> Iterator[Tuple[str, str]]:
  """(component, split) for each component, given in order as (component, stratum, n) rows,
  filling per-stratum quotas: each goes to the split with the most room left for its files."""
  splits = list(fractions)
  quota = {
    c: dict(zip(splits, apportion(n, [fractions[s] for s in splits]))) for c, n in totals.items()
  }
  filled = {c: dict.fromkeys(splits, 0) for c in totals}
  for component, rows in itertools.groupby(counts, key=lambda row: row[0]):
    per_stratum = {stratum: n for _, stratum, n in rows}
    room = {
      s: sum(n * (quota[c][s] - filled[c][s]) for c, n in per_stratum.items()) for s in splits
    }
    split = max(splits, key=lambda s: (room[s], -splits.index(s)))
    for c, n in per_stratum.items():
      filled[c][split] += n
    yield component, split


def assign(table: FileTable, options: IngestOptions) -> None:
  """Gives every candidate in `table` its fate (status, split, reason, detail, duplicate_of)."""
  db = table.db
  order = lambda key: hashlib.sha256(f'{options.split_seed}\0{key}'.encode()).hexdigest()
  db.create_function('split_order', 1, order, deterministic=True)
  db.executescript(
    'CREATE INDEX files_sha256 ON files (sha256); CREATE INDEX files_group ON files ("group");'
    'CREATE INDEX files_patient ON files (patient_hash);'
  )
  db.execute(
    f'UPDATE files SET status = ?, fate_reason = reason, fate_detail = detail '
    f"WHERE {_OPEN} AND reason != ''",
    (QUARANTINED,),
  )
  _quarantine_conflicts(db)
  _link_components(db)
  db.executescript(
    f"""
      CREATE INDEX files_component ON files (component);
      CREATE TABLE components AS SELECT component, MIN({_RANK}) AS rank, """
    f"""split_order(component) AS sort_key
        FROM files WHERE {_OPEN} GROUP BY component;
      CREATE TABLE chosen (component TEXT PRIMARY KEY, split TEXT);"""
  )
  _mark_duplicates(db)
  for rank, role in enumerate(ROLE_PRIORITY):
    kept = f'FROM files JOIN components USING (component) WHERE rank = {rank} AND {_OPEN}'
    fractions = role_fractions(role, options)
    db.execute('DROP TABLE IF EXISTS temp.strata')
    db.execute(
      f'CREATE TEMP TABLE strata AS SELECT label, source {kept} GROUP BY label, source '
      f'HAVING COUNT(*) >= ?',
      (sum(f > 0 for f in fractions.values()),),
    )
    totals = dict(db.execute(f'SELECT {_STRATUM} AS s, COUNT(*) {kept} GROUP BY s').fetchall())
    counts = db.execute(
      f'SELECT component, {_STRATUM} AS s, COUNT(*) {kept} GROUP BY sort_key, component, s '
      f'ORDER BY sort_key, component'
    )
    db.executemany('INSERT INTO chosen VALUES (?, ?)', _fill_pool(counts, fractions, totals))
  db.execute(
    f'UPDATE files SET status = ?, split = chosen.split FROM chosen '
    f'WHERE {_OPEN} AND files.component = chosen.component',
    (INGESTED,),
  )
