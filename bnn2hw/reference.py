"""The PyTorch reference of the bit-exactness checks: a model's eval-mode output in float64, which the
golden model, the RTL and the board are compared with (tests/, rtl_tests/, bench/, ``bnn2hw simulate
--labels``). Kept apart from the random test models of :mod:`bnn2hw.testing`.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

__all__ = ["torch_forward"]


def torch_forward(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """The model's eval-mode output in float64 (a float64 copy; the model itself is not changed)."""
    m = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        return m(torch.from_numpy(np.asarray(x, dtype=np.float64))).numpy()
