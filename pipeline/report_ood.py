"""The report's out-of-distribution abstention (components/ood.py): the score the Trainer chose,
its threshold and the share of eval images it accepts, and how well each candidate score told the
eval images from generated non-X-ray images (AUROC)."""

from typing import Any, Dict, List, Optional

from pipeline import report_format


def ood_section(record: Optional[Dict[str, Any]]) -> List[str]:
  """The Trainer's record (ood.json in model_run) as a table and a sentence."""
  lines = ['## Out-of-distribution abstention', '']
  if record is None:
    return lines + ['No abstention record: the model was trained before abstention existed.', '']
  lines += [
    f'The served model answers `in_distribution: false` ("outside the training distribution: not '
    f'classified") when its `{record["method"]}` score exceeds {record["threshold"]:.4g}, the '
    f'threshold that accepts {record["eval_accept_rate"]:.1%} of the {record["eval_images"]} eval '
    f'images (target {record["target_eval_accept_rate"]:.0%}).',
    '',
  ]
  lines += report_format.table(
    ['score', 'AUROC: eval images vs generated non-X-ray images', 'chosen'],
    [
      [method, report_format.fmt(auroc), 'yes' if method == record['method'] else '']
      for method, auroc in sorted(record['auroc'].items())
    ],
  )
  if record.get('note'):
    lines += ['', f'Note: {record["note"]}']
  return lines + ['']
