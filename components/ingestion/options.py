"""Ingestion options, validated once so every stage can trust them."""

import dataclasses
import re
from typing import Any, Dict, Mapping, Optional, Tuple

TRAIN, EVAL, TEST = SPLITS = ('train', 'eval', 'test')
UNKNOWN_CLASS_MODES = ('error', 'ignore')


def _parse_split_ratios(text: str) -> Tuple[float, float, float]:
  """'0.8,0.1,0.1' -> (0.8, 0.1, 0.1): train/eval/test ratios of a single root of class folders."""
  try:
    ratios = tuple(float(part) for part in text.split(','))
  except ValueError:
    raise ValueError(
      f"split_ratios must be three comma-separated numbers like '0.8,0.1,0.1', got {text!r}"
    ) from None
  if len(ratios) != 3:
    raise ValueError(f'split_ratios must have three values (train,eval,test), got {text!r}')
  return ratios


def _format_split_ratios(ratios) -> str:
  return ','.join(f'{r:g}' for r in ratios)


@dataclasses.dataclass(frozen=True)
class IngestOptions:
  """What to ingest and how to split it.

  span: 'latest', 'all', 'N' or 'N-M' (span-N folders); ignored when there are no span folders.
  eval_fraction: share of Train/ that becomes the eval split (Train/+Test/ layout).
  split_ratios: train/eval/test ratios for a single root of class folders.
  group_regex: regex on the file name; files with the same match (first group if any) stay in
    one split.
  unknown_classes: 'error' stops on folders that are not a known class; 'ignore' skips and
    reports them.
  max_bad_fraction: the run fails when more than this share of image files is quarantined.
  max_image_pixels: images with more pixels are refused from their header, before decoding.
  split_seed: salt of the hash that orders files for the split assignment.
  metadata_csv: a CSV of per-image metadata (columns `path` or `file`, and any of `source`,
    `view`, `sex`, `age`, `manufacturer`, `patient_id`; see metadata_csv.py); a listed value
    replaces the folder's or the DICOM file's.
  patient_salt_file: the file holding the secret salt of the patient hashes (created with a random
    salt when missing); keep it outside the artifacts. None: a random salt for this run only.
  allow_confounded_sources: go on (with a warning in the report) when a test class comes only
    from sources holding no other test class; by default ingestion refuses such data.
  """

  span: str = 'latest'
  eval_fraction: float = 0.1
  split_ratios: Tuple[float, float, float] = (0.8, 0.1, 0.1)
  group_regex: str = ''
  unknown_classes: str = 'error'
  max_bad_fraction: float = 0.10
  max_image_pixels: int = 100_000_000
  split_seed: str = 'cxr-split-v1'
  metadata_csv: Optional[str] = None
  allow_confounded_sources: bool = False
  patient_salt_file: Optional[str] = None

  def __post_init__(self):
    if not re.fullmatch(r'latest|all|\d+|\d+-\d+', self.span):
      raise ValueError(f"span must be 'latest', 'all', 'N' or 'N-M', got {self.span!r}")
    if not 0.0 <= self.eval_fraction < 1.0:
      raise ValueError(f'eval_fraction must be in [0, 1), got {self.eval_fraction}')
    ratios = tuple(float(r) for r in self.split_ratios)
    if len(ratios) != 3 or min(ratios) < 0 or ratios[0] <= 0 or abs(sum(ratios) - 1.0) > 1e-6:
      raise ValueError(
        'split_ratios must be three non-negative train/eval/test ratios summing '
        f'to 1 with train > 0, got {self.split_ratios}'
      )
    object.__setattr__(self, 'split_ratios', ratios)
    if self.unknown_classes not in UNKNOWN_CLASS_MODES:
      raise ValueError(
        f'unknown_classes must be one of {UNKNOWN_CLASS_MODES}, got {self.unknown_classes!r}'
      )
    if not 0.0 <= self.max_bad_fraction <= 1.0:
      raise ValueError(f'max_bad_fraction must be in [0, 1], got {self.max_bad_fraction}')
    if self.metadata_csv is not None and not self.metadata_csv.strip():
      raise ValueError('metadata_csv must name a CSV file, got an empty string')
    if self.patient_salt_file is not None and not self.patient_salt_file.strip():
      raise ValueError('patient_salt_file must name a file, got an empty string')
    if self.max_image_pixels <= 0:
      raise ValueError(f'max_image_pixels must be positive, got {self.max_image_pixels}')
    try:
      re.compile(self.group_regex)
    except re.error as e:
      raise ValueError(
        f'group_regex {self.group_regex!r} is not a valid regular expression: {e}'
      ) from None

  def to_config(self) -> Dict[str, Any]:
    """The ImageFolderExampleGen parameters (JSON types: `split_ratios` as 'train,eval,test').
    `span` is `span_selection` there: TFX's ExampleGen driver sets the property `span`."""
    config = dataclasses.asdict(self)
    config['span_selection'] = config.pop('span')
    config['split_ratios'] = _format_split_ratios(self.split_ratios)
    config['metadata_csv'] = self.metadata_csv or ''  # a component parameter cannot be None
    config['patient_salt_file'] = self.patient_salt_file or ''
    return config

  @classmethod
  def from_config(cls, config: Mapping[str, Any]) -> 'IngestOptions':
    """The inverse of to_config; missing keys take the defaults."""
    config = dict(config)
    if 'span_selection' in config:
      config['span'] = config.pop('span_selection')
    if isinstance(config.get('split_ratios'), str):
      config['split_ratios'] = _parse_split_ratios(config['split_ratios'])
    config['metadata_csv'] = config.get('metadata_csv') or None
    config['patient_salt_file'] = config.get('patient_salt_file') or None
    return cls(**config)
