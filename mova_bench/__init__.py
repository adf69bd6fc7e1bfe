"""mova-bench: evaluation and benchmarking for synchronized video+audio generation."""

__version__ = "0.1.0"

__all__ = ["__version__"]
