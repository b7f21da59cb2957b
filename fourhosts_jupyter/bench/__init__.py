"""Benchmarks: python -m fourhosts_jupyter.bench AREA."""
