"""torch → IR, with an up-front support check."""
from .torch_import import SUPPORTED_SHAPE, import_model

__all__ = ["import_model", "SUPPORTED_SHAPE"]
