"""Benchmarks: each bench_*.py builds its own data and measures us against a baseline in one run."""
