"""Training data by name: ``digits`` (bundled with scikit-learn, the default), ``mnist`` and
``fashion-mnist`` (local IDX files) and ``cifar10`` (local binary batches).

Pixels stay raw unsigned integers, exactly what the hardware receives; the model's first layer is
``InputQuant(input_bits)``. Every sample is flattened for the dense models (channel-major for CIFAR-10,
i.e. the R, G, B planes one after another); ``image_shape`` keeps the unflattened shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..datasets import DIGITS_INPUT_BITS, DIGITS_SPLIT_DESCRIPTION, load_digits_split
from ..errors import DatasetError
from ..local_datasets import load_cifar10_dir, load_mnist_dir

__all__ = ["TrainingData", "load_training_data", "DATASETS"]

DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10")


@dataclass(frozen=True)
class TrainingData:
    """Integer pixels x (int64, n × features) and labels y (int64) of the train and test splits."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    input_bits: int
    image_shape: tuple[int, ...]
    num_classes: int
    description: str

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (int(np.prod(self.image_shape)),)


def load_training_data(name: str = "digits", data_dir: str | Path | None = None, split_seed: int = 0) -> TrainingData:
    """The named data set; ``data_dir`` is required for every data set except ``digits``.

    ``split_seed`` chooses the digits train/test split (the file-based data sets ship their own split).
    Raises :class:`DatasetError` with one sentence for an unknown name or missing or malformed files.
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown data set '{name}'; choose one of {', '.join(DATASETS)}")
    if name == "digits":
        split = load_digits_split(seed=split_seed)
        return TrainingData(name, split.x_train, split.y_train, split.x_test, split.y_test, DIGITS_INPUT_BITS, (8, 8),
                            10, f"{DIGITS_SPLIT_DESCRIPTION}, seed={split_seed}")
    if data_dir is None:
        raise DatasetError(f"the {name} data set is read from local files; give their directory with --data-dir "
                           "(nothing is downloaded)")
    directory = Path(data_dir)
    if name == "cifar10":
        split = load_cifar10_dir(directory)
        description = f"CIFAR-10 binary batches from '{directory}' (50000 train / 10000 test)"
    else:
        split = load_mnist_dir(directory)
        description = f"{'MNIST' if name == 'mnist' else 'Fashion-MNIST'} IDX files from '{directory}'"
    image_shape = tuple(int(d) for d in split.x_train.shape[1:])
    if tuple(split.x_test.shape[1:]) != image_shape:
        raise DatasetError(f"the train and test images in '{directory}' differ in shape: {image_shape} and "
                           f"{tuple(split.x_test.shape[1:])}")

    def flat(x):
        return np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.int64)

    return TrainingData(name, flat(split.x_train), split.y_train, flat(split.x_test), split.y_test, 8, image_shape,
                        10, description)
