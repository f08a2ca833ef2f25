"""MNIST-style IDX and CIFAR-10 binary loaders, on small files written by the test in the real formats, and
the data-set registry: every entry loads as it declares."""

import gzip

import numpy as np
import pytest

from bnn2hw.data import (CIFAR10_FILES, DATASETS, IDX_FILES, REGISTRY, load_cifar10_dir, load_idx, load_mnist_dir,
                         load_training_data)
from bnn2hw.errors import DatasetError


def write_idx(path, array, compress=False):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def make_mnist(directory, n_train=7, n_test=3, compress=False, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {"x_train": rng.integers(0, 256, (n_train, 28, 28)), "y_train": rng.integers(0, 10, n_train),
              "x_test": rng.integers(0, 256, (n_test, 28, 28)), "y_test": rng.integers(0, 10, n_test)}
    for key, name in IDX_FILES.items():
        write_idx(directory / name, arrays[key], compress)
    return arrays


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_round_trip(tmp_path, compress):
    arrays = make_mnist(tmp_path, compress=compress)
    split = load_mnist_dir(tmp_path)
    for key in arrays:
        assert np.array_equal(getattr(split, key), arrays[key])
    assert split.x_train.dtype == np.uint8 and split.y_train.dtype == np.int64


def test_mnist_missing_file_is_named(tmp_path):
    make_mnist(tmp_path)
    (tmp_path / IDX_FILES["y_test"]).unlink()
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.*" + str(tmp_path).replace("/", ".")):
        load_mnist_dir(tmp_path)


def test_mnist_missing_directory(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_mnist_dir(tmp_path / "nowhere")


def test_idx_bad_magic_and_truncation(tmp_path):
    (tmp_path / "a").write_bytes(b"\x1f\x8b\x08\x00junk")
    with pytest.raises(DatasetError, match="not an IDX file"):
        load_idx(tmp_path / "a")
    write_idx(tmp_path / "b", np.zeros((4, 28, 28)))
    (tmp_path / "b").write_bytes((tmp_path / "b").read_bytes()[:-5])
    with pytest.raises(DatasetError, match="truncated"):
        load_idx(tmp_path / "b")


def test_mnist_images_and_labels_must_match(tmp_path):
    make_mnist(tmp_path)
    write_idx(tmp_path / IDX_FILES["y_train"], np.zeros(5))
    with pytest.raises(DatasetError, match="do not match"):
        load_mnist_dir(tmp_path)


def make_cifar(directory, per_batch=4, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for split, names in CIFAR10_FILES.items():
        xs, ys = [], []
        for name in names:
            x = rng.integers(0, 256, (per_batch, 3, 32, 32)).astype(np.uint8)
            y = rng.integers(0, 10, per_batch).astype(np.uint8)
            (directory / name).write_bytes(np.concatenate([y[:, None], x.reshape(per_batch, -1)], axis=1).tobytes())
            xs.append(x); ys.append(y)
        out[split] = (np.concatenate(xs), np.concatenate(ys))
    return out


def test_cifar10_round_trip_from_parent_directory(tmp_path):
    inner = tmp_path / "cifar-10-batches-bin"
    inner.mkdir()
    ref = make_cifar(inner)
    split = load_cifar10_dir(tmp_path)
    assert np.array_equal(split.x_train, ref["train"][0]) and np.array_equal(split.y_train, ref["train"][1])
    assert np.array_equal(split.x_test, ref["test"][0]) and split.x_test.shape == (4, 3, 32, 32)


def test_cifar10_errors(tmp_path):
    make_cifar(tmp_path)
    (tmp_path / "test_batch.bin").write_bytes(b"\x00" * 100)
    with pytest.raises(DatasetError, match="binary version"):
        load_cifar10_dir(tmp_path)
    (tmp_path / "test_batch.bin").unlink()
    with pytest.raises(DatasetError, match="expected 'test_batch.bin'"):
        load_cifar10_dir(tmp_path)


@pytest.mark.parametrize("name", DATASETS)
def test_every_registry_entry_loads_as_it_declares(tmp_path, name):
    entry = REGISTRY[name]
    assert entry.name == name
    if entry.local_files:
        (make_cifar if name == "cifar10" else make_mnist)(tmp_path)
    data = load_training_data(name, tmp_path if entry.local_files else None)
    assert data.name == name and data.image_shape == entry.image_shape and data.input_shape == entry.input_shape
    assert data.input_bits == entry.input_bits and data.num_classes == entry.classes
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        assert x.dtype == np.int64 and y.dtype == np.int64 and x.shape == (len(y),) + entry.input_shape
        assert 0 <= x.min() and x.max() < 1 << entry.input_bits and 0 <= y.min() and y.max() < entry.classes
