"""Benchmarks: medians, with a reference measured in the same run."""
