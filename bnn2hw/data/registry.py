"""The table of data sets, by name: how each is loaded and what its samples are.

Adding a data set is one :class:`Dataset` entry in :data:`REGISTRY`: its loader and the shape, bits,
classes and description of its samples. ``bnn2hw train`` and ``bnn2hw diagnose`` take every name of the
table; :func:`load_training_data` loads one.

Pixels stay raw unsigned integers, exactly what the hardware receives; the model's first layer is
``InputQuant(input_bits)``. Every sample is flattened for the dense models (channel-major for CIFAR-10,
i.e. the R, G, B planes one after another); ``image_shape`` keeps the unflattened shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DatasetError
from .digits import (DIGITS_IMAGE_SHAPE, DIGITS_INPUT_BITS, DIGITS_NUM_CLASSES, DIGITS_SPLIT_DESCRIPTION,
                     load_digits_split)
from .files import ImageSplit, load_cifar10_dir, load_mnist_dir
from .mnist1d import (MNIST1D_DESCRIPTION, MNIST1D_INPUT_BITS, MNIST1D_LENGTH, MNIST1D_NUM_CLASSES, MNIST1D_SAMPLES,
                      load_mnist1d)

__all__ = ["Dataset", "Loader", "REGISTRY", "DATASETS", "TrainingData", "load_training_data"]

#: ``load(directory, split_seed)`` → (the train and test samples, each of its unflattened shape, and a
#: sentence saying where they came from). ``directory`` is None for a data set without local files.
Loader = Callable[[Path | None, int], tuple[ImageSplit, str]]


@dataclass(frozen=True)
class Dataset:
    """One data set of the table.

    ``image_shape`` is the shape of one sample before flattening (a loader of local files reports the
    shape its files hold), ``input_bits`` the bits of its unsigned pixels, ``classes`` the number of
    labels (0..classes-1). ``local_files``: read from a directory (``--data-dir``), which must be given."""

    name: str
    load: Loader
    image_shape: tuple[int, ...]
    input_bits: int
    classes: int
    description: str
    local_files: bool = True

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One flattened sample, as the dense models take it."""
        return (int(np.prod(self.image_shape)),)


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


def _load_digits(directory: Path | None, split_seed: int) -> tuple[ImageSplit, str]:
    split = load_digits_split(seed=split_seed)
    images = lambda x: x.reshape((len(x),) + DIGITS_IMAGE_SHAPE)
    return (ImageSplit(images(split.x_train), split.y_train, images(split.x_test), split.y_test),
            f"{DIGITS_SPLIT_DESCRIPTION}, seed={split_seed}")


def _load_mnist1d(directory: Path | None, split_seed: int) -> tuple[ImageSplit, str]:
    return ImageSplit(*load_mnist1d()), MNIST1D_DESCRIPTION.format(samples=MNIST1D_SAMPLES)


def _idx_loader(title: str) -> Loader:
    def load(directory: Path, split_seed: int) -> tuple[ImageSplit, str]:
        return load_mnist_dir(directory), f"{title} IDX files from '{directory}'"
    return load


def _load_cifar10(directory: Path, split_seed: int) -> tuple[ImageSplit, str]:
    return load_cifar10_dir(directory), f"CIFAR-10 binary batches from '{directory}' (50000 train / 10000 test)"


REGISTRY: dict[str, Dataset] = {d.name: d for d in (
    Dataset("digits", _load_digits, DIGITS_IMAGE_SHAPE, DIGITS_INPUT_BITS, DIGITS_NUM_CLASSES,
            "8x8 handwritten digits bundled with scikit-learn", local_files=False),
    Dataset("mnist1d", _load_mnist1d, (MNIST1D_LENGTH,), MNIST1D_INPUT_BITS, MNIST1D_NUM_CLASSES,
            "MNIST-1D, 40-value 1-D digit signals generated offline by the mnist1d package (4000 train / 1000 "
            "test)", local_files=False),
    Dataset("mnist", _idx_loader("MNIST"), (28, 28), 8, 10, "28x28 handwritten digits, IDX files"),
    Dataset("fashion-mnist", _idx_loader("Fashion-MNIST"), (28, 28), 8, 10, "28x28 clothing images, IDX files"),
    Dataset("cifar10", _load_cifar10, (3, 32, 32), 8, 10, "32x32 colour images, binary batches"),
)}
"""Every data set by name, in the order the command-line help lists them."""

DATASETS = tuple(REGISTRY)
"""The names of :data:`REGISTRY`."""


def load_training_data(name: str = "digits", data_dir: str | Path | None = None, split_seed: int = 0) -> TrainingData:
    """The named data set; ``data_dir`` is required for every data set with local files (all but ``digits``).

    ``split_seed`` chooses the digits train/test split (MNIST-1D and the file-based data sets have their own).
    Raises :class:`DatasetError` with one sentence for an unknown name or missing or malformed files.
    """
    if name not in REGISTRY:
        raise DatasetError(f"unknown data set '{name}'; choose one of {', '.join(DATASETS)}")
    dataset = REGISTRY[name]
    if dataset.local_files and data_dir is None:
        raise DatasetError(f"the {name} data set is read from local files; give their directory with --data-dir "
                           "(nothing is downloaded)")
    directory = Path(data_dir) if data_dir is not None and dataset.local_files else None
    split, description = dataset.load(directory, split_seed)
    image_shape = tuple(int(d) for d in split.x_train.shape[1:])
    if tuple(split.x_test.shape[1:]) != image_shape:
        raise DatasetError(f"the train and test images in '{directory}' differ in shape: {image_shape} and "
                           f"{tuple(split.x_test.shape[1:])}")

    def flat(x):
        return np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.int64)

    return TrainingData(name, flat(split.x_train), split.y_train, flat(split.x_test), split.y_test,
                        dataset.input_bits, image_shape, dataset.classes, description)
