"""A validation split carved from a data set's training samples, for choices such as the learning
rate: the test split is never looked at while choosing."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import DatasetError
from .registry import TrainingData

__all__ = ["validation_split"]


def validation_split(data: TrainingData, fraction: float = 0.2, seed: int = 0) -> TrainingData:
    """``data`` with its training samples split in two, stratified by class: ``x_train``/``y_train``
    keep 1 - ``fraction`` of them, ``x_test``/``y_test`` hold the rest (the validation samples). The
    original test split is dropped."""
    if not 0.0 < fraction < 1.0:
        raise DatasetError(f"the validation fraction must be between 0 and 1 (exclusive), not {fraction}")
    from sklearn.model_selection import train_test_split

    x_fit, x_val, y_fit, y_val = train_test_split(data.x_train, data.y_train, test_size=fraction, random_state=seed,
                                                  shuffle=True, stratify=data.y_train)
    arrays = [np.ascontiguousarray(a, dtype=np.int64) for a in (x_fit, y_fit, x_val, y_val)]
    return dataclasses.replace(data, name=f"{data.name} (validation)", x_train=arrays[0], y_train=arrays[1],
                               x_test=arrays[2], y_test=arrays[3],
                               description=f"{data.description}; {1 - fraction:.0%} of its training samples for "
                                           f"training, {fraction:.0%} for validation (stratified, seed {seed})")
