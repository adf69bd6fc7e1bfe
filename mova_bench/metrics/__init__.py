"""Metrics. See :mod:`mova_bench.metrics.base`."""
