"""Feature extractors (backbones and per-clip analyzers). See :mod:`mova_bench.features.base`."""
