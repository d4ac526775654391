"""Benchmarks: `python -m bench.run` (what `make bench` runs) and the scripts it builds on."""
