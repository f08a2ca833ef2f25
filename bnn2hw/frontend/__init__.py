"""torch or QONNX → IR, with an up-front support check."""
from .qonnx_import import SUPPORTED_QONNX, QonnxModel, import_qonnx, load_qonnx, parse_input_scale
from .torch_import import SUPPORTED_SHAPE, import_model

__all__ = ["import_model", "SUPPORTED_SHAPE", "QonnxModel", "import_qonnx", "load_qonnx", "parse_input_scale",
           "SUPPORTED_QONNX"]
