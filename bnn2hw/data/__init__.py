"""Data sets by name, read offline: one table (:data:`REGISTRY`, registry.py) of every data set with its
loader, sample shape, input bits, classes and description; the digits split (digits.py, scikit-learn's
bundled 8x8 digits); MNIST-1D, generated offline (mnist1d.py); a validation split carved from the
training samples (validation.py); and the readers of local files (files.py: MNIST and Fashion-MNIST IDX files,
CIFAR-10 binary batches). Nothing is downloaded and nothing is unpickled.

Adding a data set is one entry of :data:`REGISTRY`.
"""
from .digits import (DIGITS_IMAGE_SHAPE, DIGITS_INPUT_BITS, DIGITS_INPUT_SHAPE, DIGITS_NUM_CLASSES,
                     DIGITS_SPLIT_DESCRIPTION, DigitsSplit, load_digits_split)
from .files import CIFAR10_FILES, IDX_FILES, ImageSplit, load_cifar10_dir, load_idx, load_mnist_dir
from .mnist1d import load_mnist1d
from .registry import DATASETS, REGISTRY, Dataset, Loader, TrainingData, load_training_data
from .validation import validation_split

__all__ = ["DATASETS", "REGISTRY", "Dataset", "Loader", "TrainingData", "load_training_data",
           "DigitsSplit", "load_digits_split", "DIGITS_INPUT_BITS", "DIGITS_INPUT_SHAPE", "DIGITS_IMAGE_SHAPE",
           "DIGITS_NUM_CLASSES", "DIGITS_SPLIT_DESCRIPTION",
           "ImageSplit", "load_idx", "load_mnist_dir", "load_cifar10_dir", "IDX_FILES", "CIFAR10_FILES",
           "load_mnist1d", "validation_split"]
