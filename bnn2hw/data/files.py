"""Image data sets read from local files: MNIST and Fashion-MNIST (IDX) and CIFAR-10 (binary version).

Nothing is downloaded and nothing is unpickled: IDX and the CIFAR-10 binary records are parsed with
numpy from their documented byte layouts. A missing or malformed file is one :class:`DatasetError`
naming the file that was expected and where.

* MNIST / Fashion-MNIST: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` in one directory, each optionally ``.gz``.
  Images are uint8 28×28 (shape (n, 28, 28)); labels 0..9.
* CIFAR-10: ``data_batch_1.bin`` … ``data_batch_5.bin`` and ``test_batch.bin`` (the
  ``cifar-10-batches-bin`` directory, or its parent). Each record is 1 label byte and 3072 pixel bytes
  (red, green, blue planes of 32×32, row-major); images come back as uint8 (n, 3, 32, 32).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetError

__all__ = ["ImageSplit", "load_idx", "load_mnist_dir", "load_cifar10_dir", "IDX_FILES", "CIFAR10_FILES"]

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte",
}
CIFAR10_FILES = {"train": [f"data_batch_{k}.bin" for k in range(1, 6)], "test": ["test_batch.bin"]}
_CIFAR_RECORD = 1 + 3 * 32 * 32
_IDX_UBYTE = 0x08


@dataclass(frozen=True)
class ImageSplit:
    """Integer pixels (n × image shape; uint8 from the file readers) and int64 labels of a train and a
    test split."""
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _read(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError) as e:
        raise DatasetError(f"'{path}' could not be read ({e}); download the file again") from None


def load_idx(path: str | Path) -> np.ndarray:
    """One IDX file of unsigned bytes (magic 0x00000801 labels, 0x00000803 images) as a uint8 array."""
    path = Path(path)
    raw = _read(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _IDX_UBYTE or raw[3] == 0:
        raise DatasetError(f"'{path}' is not an IDX file of unsigned bytes (its first 4 bytes must be "
                           "00 00 08 followed by the number of dimensions)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"'{path}' ends inside its IDX header; the file is truncated, download it again")
    shape = tuple(int.from_bytes(raw[4 + 4 * k:8 + 4 * k], "big") for k in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DatasetError(f"'{path}' holds {len(raw)} bytes but its IDX header {shape} needs {expected}; "
                           "the file is truncated or corrupt, download it again")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find(directory: Path, name: str) -> Path:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise DatasetError(f"expected '{name}' (or '{name}.gz') in '{directory}', but it is not there; "
                       "put the four IDX files of MNIST or Fashion-MNIST in that directory")


def load_mnist_dir(directory: str | Path) -> ImageSplit:
    """MNIST or Fashion-MNIST from the four IDX files in ``directory`` (same names for both)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"data directory '{directory}' does not exist; give the directory holding the IDX files")
    arrays = {key: load_idx(_find(directory, name)) for key, name in IDX_FILES.items()}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DatasetError(f"the {split} files in '{directory}' do not match: images {x.shape}, labels "
                               f"{y.shape}; expected (n, rows, cols) images and n labels")
        if y.size and y.max() > 9:
            raise DatasetError(f"the {split} labels in '{directory}' go up to {y.max()}, but there are 10 classes")
    return ImageSplit(arrays["x_train"], arrays["y_train"].astype(np.int64),
                      arrays["x_test"], arrays["y_test"].astype(np.int64))


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = _read(path)
    if not raw or len(raw) % _CIFAR_RECORD:
        raise DatasetError(f"'{path}' holds {len(raw)} bytes, not a whole number of {_CIFAR_RECORD}-byte CIFAR-10 "
                           "records; use the binary version (cifar-10-binary.tar.gz), not the Python one")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _CIFAR_RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise DatasetError(f"'{path}' has label {labels.max()}; CIFAR-10 labels are 0..9, so this is not a "
                           "CIFAR-10 binary batch")
    return records[:, 1:].reshape(-1, 3, 32, 32), labels


def load_cifar10_dir(directory: str | Path) -> ImageSplit:
    """CIFAR-10 from its binary batches in ``directory`` (or ``directory/cifar-10-batches-bin``)."""
    directory = Path(directory)
    if (directory / "cifar-10-batches-bin").is_dir():
        directory = directory / "cifar-10-batches-bin"
    if not directory.is_dir():
        raise DatasetError(f"data directory '{directory}' does not exist; give the directory holding "
                           "data_batch_1.bin … test_batch.bin")
    splits = {}
    for split, names in CIFAR10_FILES.items():
        parts = []
        for name in names:
            path = directory / name
            if not path.is_file():
                raise DatasetError(f"expected '{name}' in '{directory}', but it is not there; unpack the binary "
                                   "version of CIFAR-10 (cifar-10-binary.tar.gz) into that directory")
            parts.append(_cifar_batch(path))
        splits[split] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return ImageSplit(splits["train"][0], splits["train"][1], splits["test"][0], splits["test"][1])
