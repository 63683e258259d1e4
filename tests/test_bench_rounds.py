"""benchmarks/rounds.py: ours and the baseline alternate which runs first, each round's pair is
adjacent, and the figures are the median, min and max of each rate and of the per-round ratio."""

from benchmarks import rounds


def test_rounds_alternate_which_runs_first():
  calls = []
  ours_rates = iter([10.0, 30.0, 20.0, 40.0])
  baseline_rates = iter([5.0, 10.0, 20.0, 10.0])

  def ours():
    calls.append('ours')
    return next(ours_rates)

  def baseline():
    calls.append('baseline')
    return next(baseline_rates)

  ours_got, baseline_got = rounds.interleaved(ours, baseline, 4, 'test')
  assert calls == ['baseline', 'ours', 'ours', 'baseline'] * 2
  assert (ours_got, baseline_got) == ([10.0, 30.0, 20.0, 40.0], [5.0, 10.0, 20.0, 10.0])


def test_figures_are_median_min_and_max_of_rates_and_per_round_ratios():
  figures = rounds.figures('x.ours', 'x.base', 'x.ratio', [10.0, 30.0, 21.0], [5.0, 10.0, 20.0])
  assert figures == {
    'x.ours': 21.0,
    'x.ours.min': 10.0,
    'x.ours.max': 30.0,
    'x.base': 10.0,
    'x.base.min': 5.0,
    'x.base.max': 20.0,
    # per round 2.0, 3.0 and 1.05: not the ratio of the medians (2.1)
    'x.ratio': 2.0,
    'x.ratio.min': 1.05,
    'x.ratio.max': 3.0,
  }
  assert rounds.summary(figures, 'x.ratio') == '2.0 (1.05-3.0)'
