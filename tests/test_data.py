"""Loading, checking and preprocessing MNIST, and the salt-and-pepper noise."""

import os

import numpy as np
import pytest

from conftest import write_npz
from mnistlab import data
from mnistlab.cli import LabError


def test_valid_file_loads_with_shapes_and_dtypes(tiny_npz):
    (x_train, y_train), (x_test, y_test) = data.load_mnist(tiny_npz)
    assert x_train.shape == (600, 28, 28) and y_train.shape == (600,)
    assert x_test.shape == (200, 28, 28) and y_test.shape == (200,)
    assert x_train.dtype == np.uint8


def test_flag_wins_over_environment_variable(tiny_npz, monkeypatch):
    monkeypatch.setenv("MNIST_NPZ", "/nonexistent/from-env.npz")
    assert data.resolve_source(tiny_npz) == tiny_npz
    assert data.resolve_source(None) == "/nonexistent/from-env.npz"
    with pytest.raises(LabError, match="from-env.npz"):
        data.load_mnist()


def test_failed_download_says_how_to_use_a_local_file(monkeypatch):
    import keras

    def offline():
        raise OSError("no network")

    monkeypatch.delenv("MNIST_NPZ", raising=False)
    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(LabError, match="could not download MNIST.*--data.*MNIST_NPZ"):
        data.load_mnist()


BAD_FILES = {
    "missing key": (dict(y_test=None), "lacks y_test"),
    "x not 28x28": (dict(x_train=np.zeros((600, 28, 27), np.uint8)), r"shape \(600, 28, 27\)"),
    "y not flat": (dict(y_train=np.zeros((600, 1), np.uint8)), r"expected \(N,\)"),
    "length mismatch": (dict(y_test=np.zeros(199, np.uint8)), "differ in length"),
    "float pixels": (dict(x_test=np.zeros((200, 28, 28), np.float32)), "expected uint8"),
    "label 10": (dict(y_train=np.full(600, 10, np.uint8)), "labels outside 0-9"),
    "negative label": (dict(y_test=np.full(200, -1, np.int64)), "labels outside 0-9"),
    "float labels": (dict(y_test=np.zeros(200, np.float32)), "labels outside 0-9"),
    "empty": (dict(x_test=np.zeros((0, 28, 28), np.uint8), y_test=np.zeros(0, np.uint8)), "is empty"),
    "pickled objects": (dict(y_train=np.array([object()] * 600)), "pickled"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_file_is_rejected_with_its_reason(tmp_path, case):
    overrides, message = BAD_FILES[case]
    path = write_npz(tmp_path / "bad.npz", **overrides)
    with pytest.raises(LabError, match=message):
        data.load_mnist(path)


def test_missing_file(tmp_path):
    with pytest.raises(LabError, match="not found.*--data"):
        data.load_mnist(str(tmp_path / "nope.npz"))


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(LabError, match="is a folder; pass the mnist.npz inside it"):
        data.load_mnist(str(tmp_path))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_pipe_or_device_instead_of_a_file(tmp_path):
    os.mkfifo(tmp_path / "pipe.npz")
    for path in (tmp_path / "pipe.npz", os.devnull):  # a read of the pipe would wait forever
        with pytest.raises(LabError, match="is not a regular file; pass Keras's mnist.npz"):
            data.load_mnist(str(path))


@pytest.mark.parametrize("content", [b"", b"not a zip file at all", b"PK\x03\x04truncated"])
def test_corrupt_file(tmp_path, content):
    path = tmp_path / "corrupt.npz"
    path.write_bytes(content)
    with pytest.raises(LabError, match="not a readable .npz|corrupt"):
        data.load_mnist(str(path))


def test_truncated_real_npz(tmp_path, tiny_npz):
    path = tmp_path / "truncated.npz"
    path.write_bytes(open(tiny_npz, "rb").read()[:5000])
    with pytest.raises(LabError, match="not a readable .npz|corrupt"):
        data.load_mnist(str(path))


@pytest.mark.parametrize("script, shape", [("mlp_mnist", (28, 28)), ("cnn_mnist", (28, 28, 1)),
                                           ("denoise_autoencoder", (784,))])
def test_each_script_scales_to_unit_float32_and_one_hots_in_its_layout(script, shape, tiny_npz):
    import importlib

    (x_raw, y_raw), _ = data.load_mnist(tiny_npz)
    (x, y), (x_test, _) = importlib.import_module(script).load_data(tiny_npz)
    assert x.dtype == np.float32 and x.shape == (len(x_raw), *shape) and x_test.shape[1:] == shape
    np.testing.assert_allclose(x.reshape(x_raw.shape), x_raw / 255.0, rtol=1e-6)
    assert y.shape == (len(y_raw), 10)
    np.testing.assert_array_equal(y.sum(axis=1), 1.0)
    np.testing.assert_array_equal(y.argmax(axis=1), y_raw)


def test_quick_takes_the_first_examples(tiny_npz, monkeypatch):
    monkeypatch.setattr(data, "QUICK_SIZES", (100, 50))
    (x_all, _), (t_all, _) = data.load_mnist(tiny_npz)
    (x, y), (t, u) = data.load_mnist(tiny_npz, quick=True)
    assert (len(x), len(y), len(t), len(u)) == (100, 100, 50, 50)
    np.testing.assert_array_equal(x, x_all[:100])
    np.testing.assert_array_equal(t, t_all[:50])


def test_real_mnist_file_matches_keras_format(real_mnist):
    (x_train, y_train), (x_test, y_test) = data.load_mnist(real_mnist)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert sorted(np.unique(y_train)) == list(range(10))
