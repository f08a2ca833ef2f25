"""The data set of the shipped default model: scikit-learn's 8x8 handwritten digits.

``sklearn.datasets.load_digits()`` ships inside scikit-learn (nothing is downloaded): 1797 images of
8x8 pixels, each pixel an integer 0..16, labels 0..9. :func:`load_digits_split` returns a fixed
80/20 train/test split of it, made with

    sklearn.model_selection.train_test_split(x, y, test_size=0.2, random_state=seed,
                                             shuffle=True, stratify=y)

(``seed`` defaults to 0), i.e. 1437 training and 360 test samples, stratified by class. Pixels stay
raw integers: the model's first layer is ``InputQuant(DIGITS_INPUT_BITS)``, and 0..16 fits 5-bit
unsigned, which is exactly what the hardware receives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DigitsSplit", "load_digits_split", "DIGITS_INPUT_BITS", "DIGITS_INPUT_SHAPE", "DIGITS_IMAGE_SHAPE",
           "DIGITS_NUM_CLASSES", "DIGITS_SPLIT_DESCRIPTION"]

DIGITS_INPUT_BITS = 5
"""Pixels 0..16 fit 5-bit unsigned integers: the digits model starts with ``InputQuant(5)``."""

DIGITS_INPUT_SHAPE = (64,)
"""One sample: the 8x8 image flattened row by row (as ``load_digits().data`` gives it)."""

DIGITS_IMAGE_SHAPE = (8, 8)
"""One sample before flattening: 8 rows of 8 pixels."""

DIGITS_NUM_CLASSES = 10

DIGITS_SPLIT_DESCRIPTION = (
    "sklearn.datasets.load_digits(), 80/20 split by sklearn.model_selection.train_test_split("
    "test_size=0.2, random_state=seed, shuffle=True, stratify=y)"
)


@dataclass(frozen=True)
class DigitsSplit:
    """Train and test arrays: x of shape (n, 64) with integer pixels 0..16, y with labels 0..9 (all int64)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    seed: int = 0


def load_digits_split(seed: int = 0) -> DigitsSplit:
    """The deterministic, stratified 80/20 split of the digits (see the module docstring)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = np.asarray(digits.data)
    y = np.asarray(digits.target)
    if not np.array_equal(x, np.round(x)) or x.min() < 0 or x.max() > (1 << DIGITS_INPUT_BITS) - 1:
        raise RuntimeError("scikit-learn's digits are no longer integer pixels 0..16; bnn2hw needs updating")
    x = x.astype(np.int64)
    y = y.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, random_state=seed, shuffle=True, stratify=y)
    arrays = [np.ascontiguousarray(a, dtype=np.int64) for a in (x_train, y_train, x_test, y_test)]
    return DigitsSplit(*arrays, seed=seed)
