"""The report's decision: each gate check in one line (`describe`) and the Decision section."""

from typing import List, Optional

from components.evaluation import results
from pipeline import report_format


def describe(check: results.GateCheck) -> str:
  """One line, e.g. 'COVID recall 1.00 (95% CI 0.57–1.00, 5 images): lower bound below 0.80'."""
  name = report_format.check_name(check)
  if check.is_maximum:
    verdict = 'at or below' if check.passed else 'above'
  else:
    verdict = 'at or above' if check.passed else 'below'
  if check.kind == 'change':
    return f'{name} {report_format.fmt(check.value, signed=True)}: {verdict} {check.threshold:+.2f}'
  evidence = f'95% CI {report_format.interval(check.ci)}' if check.ci else 'no interval'
  if check.images is not None:
    evidence += f', {check.images:g} images'
  judged = 'lower bound ' if check.on_lower_bound else ''
  value = 'n/a' if check.value is None else f'{check.value:.2f}'
  return f'{name} {value} ({evidence}): {judged}{verdict} {check.threshold:.2f}'


def gate_section(
  blessed: Optional[bool],
  checks: List[results.GateCheck],
  pushed: Optional[str],
  has_baseline: bool,
) -> List[str]:
  """The blessing decision, where the model was pushed, the checks as a table and as lines."""
  verdict = {True: 'BLESSED', False: 'NOT BLESSED'}.get(blessed, 'NOT EVALUATED')
  lines = [
    '## Decision',
    '',
    f'**{verdict}**: ' + (f'pushed to `{pushed}`.' if pushed else 'not pushed.'),
    '',
  ]
  rows = [
    [
      report_format.check_name(c),
      'candidate − baseline'
      if c.kind == 'change'
      else ('lower 95% bound' if c.on_lower_bound else 'point'),
      c.bound,
      report_format.fmt(c.value, signed=c.kind == 'change'),
      report_format.interval(c.ci, 3),
      'n/a' if c.images is None else f'{c.images:g}',
      'pass' if c.passed else '**FAIL**',
    ]
    for c in checks
  ]
  lines += report_format.table(
    [
      'gate check (overall test split)',
      'judged on',
      'threshold',
      'value',
      '95% CI',
      'images',
      'result',
    ],
    rows,
  )
  lines += [''] + [f'- {describe(c)}' for c in checks]
  if not has_baseline:
    lines += [
      '',
      'No blessed baseline model yet: the accuracy change threshold was not applied '
      '(first blessing).',
    ]
  return lines + ['']
