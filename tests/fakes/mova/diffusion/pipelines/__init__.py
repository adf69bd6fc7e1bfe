from .pipeline_mova import MOVA

__all__ = ["MOVA"]
