"""Generator adapters. See :mod:`mova_bench.generators.base`."""
