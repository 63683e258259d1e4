"""The report's out-of-distribution abstention (components/ood.py): the model score the Trainer
chose and the appearance score, their thresholds and the share of eval images they accept, and how
well each score told the eval images from generated non-X-ray images (AUROC)."""

from typing import Any, Dict, List, Optional

from pipeline import report_format


def ood_section(record: Optional[Dict[str, Any]]) -> List[str]:
  """The Trainer's record (ood.json in model_run) as a table and a sentence."""
  lines = ['## Out-of-distribution abstention', '']
  if record is None:
    return lines + ['No abstention record: the model was trained before abstention existed.', '']
  appearance = record.get('appearance')  # absent from records before the appearance score
  if appearance:
    rule = (
      f'its `{record["method"]}` score exceeds {record["threshold"]:.4g} or its appearance score '
      f'(the Mahalanobis distance of its greyscale thumbnail to the training images) exceeds '
      f'{appearance["threshold"]:.4g}, the thresholds that together accept'
    )
  else:
    rule = (
      f'its `{record["method"]}` score exceeds {record["threshold"]:.4g}, the threshold that '
      f'accepts'
    )
  lines += [
    f'The served model answers `in_distribution: false` ("outside the training distribution: not '
    f'classified") when {rule} {record["eval_accept_rate"]:.1%} of the {record["eval_images"]} '
    f'eval images (target {record["target_eval_accept_rate"]:.0%}).',
    '',
  ]
  rows = [
    [method, report_format.fmt(auroc), 'yes' if method == record['method'] else '']
    for method, auroc in sorted(record['auroc'].items())
  ]
  if appearance:
    rows.append(['appearance', report_format.fmt(appearance['auroc']), 'always'])
  lines += report_format.table(
    ['score', 'AUROC: eval images vs generated non-X-ray images', 'used'], rows
  )
  if record.get('note'):
    lines += ['', f'Note: {record["note"]}']
  return lines + ['']
