"""Runs every benchmarks/bench_*.py and writes benchmarks/results.json (one flat object of figures).

`python -m benchmarks.run_all [--quick] [name ...]`, e.g. `python -m benchmarks.run_all input`.
A name `bench.part` runs one part of a benchmark that lists it in its PARTS (e.g. `ingest.dicom`)
and replaces only the figures named `bench.part*`.
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


def _parts(name: str) -> tuple:
  """The parts a benchmark can run alone (its module's PARTS)."""
  return tuple(getattr(importlib.import_module(f'benchmarks.bench_{name}'), 'PARTS', ()))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument(
    'names', nargs='*', help='benchmarks (or bench.part) to run (default: all benchmarks)'
  )
  parser.add_argument('--quick', action='store_true', help='smaller data, for a smoke run')
  args = parser.parse_args(argv)
  package_dir = os.path.dirname(os.path.abspath(__file__))
  found = sorted(
    m.name[len('bench_') :]
    for m in pkgutil.iter_modules([package_dir])
    if m.name.startswith('bench_')
  )
  unknown = [
    name
    for name in args.names
    if name.partition('.')[0] not in found
    or name.partition('.')[2] not in ('', *_parts(name.partition('.')[0]))
  ]
  if unknown:
    requested = {name.partition('.')[0] for name in args.names} & set(found)
    available = found + [f'{n}.{part}' for n in sorted(requested) for part in _parts(n)]
    parser.error(f'unknown benchmark(s) {sorted(unknown)}; available: {available}')
  results = {}
  if os.path.exists(RESULTS):
    with open(RESULTS) as f:
      results = json.load(f)
  for name in args.names or found:
    print(f'== benchmark {name} (cores: {os.cpu_count()})', flush=True)
    start = time.time()
    bench, _, part = name.partition('.')
    module = importlib.import_module(f'benchmarks.bench_{bench}')
    figures = module.run(quick=args.quick, **({'part': part} if part else {}))
    prefix = name if part else f'{name}.'
    results = {
      k: v for k, v in results.items() if not k.startswith(prefix)
    }  # drop figures no longer made
    results.update(figures)
    print(f'== {name} done in {time.time() - start:.0f} s: {json.dumps(figures)}', flush=True)
    with open(RESULTS, 'w') as f:
      json.dump(results, f, indent=2, sort_keys=True)
  print(f'Wrote {RESULTS}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
