"""The one place that names the classes, in label order (COVID=0, NORMAL=1, VIRAL PNEUMONIA=2)."""

import re

CLASS_NAMES = ('COVID', 'NORMAL', 'VIRAL PNEUMONIA')
NUM_CLASSES = len(CLASS_NAMES)
COVID = CLASS_NAMES.index('COVID')  # the class the gate and the operating point single out


def canonical_name(folder_name: str) -> str:
  """Folds case and separators: 'Viral Pneumonia', 'viral_pneumonia' -> 'VIRALPNEUMONIA'."""
  return re.sub(r'[\s_\-.]+', '', folder_name).upper()


_INDEX_BY_CANONICAL = {canonical_name(name): i for i, name in enumerate(CLASS_NAMES)}


def class_index(folder_name: str):
  """Label index of a class folder name, or None when it is not one of CLASS_NAMES."""
  return _INDEX_BY_CANONICAL.get(canonical_name(folder_name))
