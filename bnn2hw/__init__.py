"""bnn2hw: binary neural networks from PyTorch to bit-exact FPGA hardware.

``bnn2hw.save`` and ``bnn2hw.load`` are imported on first use, so that tools which only need a
submodule (the cocotb bench inside a simulator, ``bnn2hw --help``) do not pay for importing torch.
"""

__version__ = "0.1.0"
__all__ = ["load", "save", "__version__"]


def __getattr__(name):
    if name in ("load", "save"):
        from . import io
        return getattr(io, name)
    raise AttributeError(f"module 'bnn2hw' has no attribute {name!r}")
