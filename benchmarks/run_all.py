"""Runs every benchmarks/bench_*.py and writes benchmarks/results.json (one flat object of figures).

`python -m benchmarks.run_all [--quick] [name ...]`, e.g. `python -m benchmarks.run_all input`.
"""

import argparse
import importlib
import json
import os
import pkgutil
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results.json')


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('names', nargs='*', help='benchmarks to run (default: all)')
  parser.add_argument('--quick', action='store_true', help='smaller data, for a smoke run')
  args = parser.parse_args(argv)
  package_dir = os.path.dirname(os.path.abspath(__file__))
  found = sorted(
    m.name[len('bench_') :]
    for m in pkgutil.iter_modules([package_dir])
    if m.name.startswith('bench_')
  )
  unknown = set(args.names) - set(found)
  if unknown:
    parser.error(f'unknown benchmark(s) {sorted(unknown)}; available: {found}')
  results = {}
  if os.path.exists(RESULTS):
    with open(RESULTS) as f:
      results = json.load(f)
  for name in args.names or found:
    print(f'== benchmark {name} (cores: {os.cpu_count()})', flush=True)
    start = time.time()
    figures = importlib.import_module(f'benchmarks.bench_{name}').run(quick=args.quick)
    results = {
      k: v for k, v in results.items() if not k.startswith(f'{name}.')
    }  # drop figures no longer made
    results.update(figures)
    print(f'== {name} done in {time.time() - start:.0f} s: {json.dumps(figures)}', flush=True)
    with open(RESULTS, 'w') as f:
      json.dump(results, f, indent=2, sort_keys=True)
  print(f'Wrote {RESULTS}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
