"""Interleaved rounds of a measurement and its baseline, reported as median, min and max.

One run of each on a shared machine is not a figure to trust (`input.speedup` was 20.5x, 22.4x
and 12.1x in three runs): each benchmark runs ours and its baseline in adjacent pairs,
alternating which runs first, so that load from other processes hits both, and keeps the
median and the spread of each rate and of the per-round ratio ours / baseline.
"""

import statistics
from typing import Callable, Dict, List, Sequence, Tuple

ROUNDS = 3


def interleaved(
  ours: Callable[[], float], baseline: Callable[[], float], rounds: int, label: str
) -> Tuple[List[float], List[float]]:
  """Rates of `rounds` adjacent runs of `ours` and `baseline` (baseline first in even rounds);
  prints each round."""
  ours_rates, baseline_rates = [], []
  for round_ in range(rounds):
    if round_ % 2:
      ours_rates.append(ours())
      baseline_rates.append(baseline())
    else:
      baseline_rates.append(baseline())
      ours_rates.append(ours())
    print(
      f'{label}, round {round_ + 1}/{rounds}: ours {ours_rates[-1]:.1f} images/s, baseline '
      f'{baseline_rates[-1]:.1f} images/s = {ours_rates[-1] / baseline_rates[-1]:.2f}x',
      flush=True,
    )
  return ours_rates, baseline_rates


def spread(name: str, values: Sequence[float], digits: int) -> Dict[str, float]:
  """{name: median, name.min: smallest, name.max: largest}, rounded to `digits`."""
  return {
    name: round(statistics.median(values), digits),
    f'{name}.min': round(min(values), digits),
    f'{name}.max': round(max(values), digits),
  }


def figures(
  ours_name: str,
  baseline_name: str,
  ratio_name: str,
  ours: Sequence[float],
  baseline: Sequence[float],
) -> Dict[str, float]:
  """The spread of both rates (1 decimal) and of the per-round ratio ours / baseline (2)."""
  return {
    **spread(ours_name, ours, 1),
    **spread(baseline_name, baseline, 1),
    **spread(ratio_name, [o / b for o, b in zip(ours, baseline)], 2),
  }


def summary(figures_: Dict[str, float], name: str) -> str:
  """'median (min-max)' of a figure."""
  return f'{figures_[name]} ({figures_[f"{name}.min"]}-{figures_[f"{name}.max"]})'
