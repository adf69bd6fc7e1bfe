"""Fake of the OpenMOSS MOVA package for tests (see tests/fakes/README.md)."""

__version__ = "0.1.0+fake"
