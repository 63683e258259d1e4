"""Turns JSON and command-line values into the types of settings fields, naming the setting."""

from typing import Any


def to_int(name: str, value: Any) -> int:
  """An integer from an int, an integral float or a numeric string; ValueError naming `name`
  (e.g. "Hyperparameter 'epochs'") otherwise. Booleans are refused although Python counts
  them as integers."""
  if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
    raise ValueError(f'{name} must be an integer, got {value!r}')
  try:
    return int(value)
  except (TypeError, ValueError):
    raise ValueError(f'{name} must be an integer, got {value!r}') from None
