"""Benchmarks: every hot path against a baseline measured in the same run (`python -m benchmarks`)."""
