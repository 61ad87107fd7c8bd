"""Shared test fixtures: a tiny learnable MNIST-like data set, and the real one when present.

Tests that call the scripts in this process run them all on one backend, JAX (a process loads
Keras on one backend; MNISTLAB_TEST_BACKEND=tensorflow chooses the other); a script run as a
subprocess trains on its own default backend, as a user's does, unless its test names one.
"""

import os

os.environ["KERAS_BACKEND"] = os.environ.get("MNISTLAB_TEST_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from mnistlab import backend

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# JAX keeps its compiled programs as the scripts have it keep them, in this user's cache folder,
# set before any test imports JAX: every test and every process they start (and the next test
# session) compile each tiny model once.
backend.choose("jax")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CNN_FIGURES = ("accuracy", "loss", "model", "confusion", "misclassified", "filters", "feature_maps")  # each CNN's


def make_digits(n, seed=0):
    """``n`` 28x28 uint8 images whose class k shows a bright band in rows 2k..2k+3, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n).astype(np.uint8)
    x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for k in range(10):
        x[y == k, 2 * k + 2:2 * k + 6, 4:24] = 230
    return x, y


def prepared_digits(n, seed=0):
    """``make_digits`` prepared as the scripts prepare MNIST: pixels float32 in [0, 1], labels one-hot."""
    import keras

    from mnistlab import data

    x, y = make_digits(n, seed)
    return data.scale(x), keras.utils.to_categorical(y, 10)


def write_npz(path, **overrides):
    (x_train, y_train), (x_test, y_test) = make_digits(600, 1), make_digits(200, 2)
    arrays = dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return str(path)


def pytest_xdist_auto_num_workers(config):
    return os.cpu_count()  # one more, for the waits on subprocesses, cost more in contention: 303 s against 271 s on 2 cores


def pytest_collection_modifyitems(items):
    """The slow tests first, the fast ones after them: the test processes, handed tests in this
    order, then end at nearly the same time instead of one waiting for the other's last long test."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def tiny_npz(tmp_path_factory):
    """One tiny data set for the whole session (the tests only read it)."""
    return write_npz(tmp_path_factory.mktemp("data") / "tiny_mnist.npz")


def made_once(tmp_path_factory, name, make, timeout=600):
    """The folder that ``make(folder)`` fills, made once per test session by whichever of its
    processes (pytest-xdist's workers) asks first; the others wait for it and share it, where a
    module fixture of each process's own would make it again."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's folder, shared by its workers
    folder, done = root / f"once-{name}", root / f"once-{name}.done"
    try:
        folder.mkdir()  # atomic: one process wins
    except FileExistsError:
        deadline = time.monotonic() + timeout
        while not done.exists():
            assert time.monotonic() < deadline, f"{name} was not made in {timeout} s"
            time.sleep(0.2)
        assert done.read_text() == "made", f"{name} could not be made (see the test that made it)"
        return folder
    try:
        make(folder)
    except BaseException:
        done.write_text("failed")
        raise
    done.write_text("made")
    return folder


# Run at the start of every Python process that has its folder on PYTHONPATH (worker processes
# included): the platform calls Linux has and macOS or Windows lack are gone.
WITHOUT_LINUX_CALLS = """
import os, signal
for name in ("sched_getaffinity", "sched_setaffinity"):
    if hasattr(os, name):
        delattr(os, name)
if hasattr(os, "process_cpu_count"):  # Python 3.13 counts all cores where it cannot ask for affinity
    os.process_cpu_count = os.cpu_count
if hasattr(signal, "SIGHUP"):
    del signal.SIGHUP
if hasattr(signal, "pthread_sigmask"):  # Windows has no signal masks
    del signal.pthread_sigmask
"""


@pytest.fixture(scope="session")
def other_platform(tmp_path_factory):
    """Environment variables that make a subprocess run as on macOS or Windows would, as far as
    the project's platform calls go: no CPU affinity, no SIGHUP, no signal masks."""
    folder = tmp_path_factory.mktemp("other_platform")
    (folder / "sitecustomize.py").write_text(WITHOUT_LINUX_CALLS)
    return {"PYTHONPATH": os.pathsep.join([str(folder), ROOT])}


@pytest.fixture
def real_mnist():
    path = os.environ.get("MNIST_NPZ")
    if not path or not os.path.isfile(path):
        pytest.skip("real MNIST not available: set MNIST_NPZ to Keras's mnist.npz "
                    "(.ci/run uses ../shared/data/mnist.npz)")
    return path


def assert_png(path):
    """The file exists, is a PNG, and decodes to a non-empty image."""
    import matplotlib.image

    assert os.path.isfile(path), f"{path} was not written"
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE, f"{path} is not a PNG"
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100


def strict_json(path):
    """The JSON in ``path``, read as strictly as JavaScript or jq read it: no NaN, no Infinity."""
    def refuse(token):
        raise ValueError(f"{path} holds {token}, which is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


def user_env(extra=None):
    """The environment of a command a user runs: this one's, without the backend the tests in
    this process chose, plus ``extra``."""
    env = {name: value for name, value in os.environ.items() if name != "KERAS_BACKEND"}
    return {**env, **(extra or {})}


def run_script(script, *args, env=None):
    """Run a lab script as a user would; returns the CompletedProcess."""
    return subprocess.run([sys.executable, os.path.join(ROOT, script), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=600, env=user_env(env))


def run_main(main, argv, capsys):
    """Run a script's or a command's main in-process through the CLI wrapper; returns (code, stdout, stderr)."""
    from mnistlab import cli

    try:
        code = cli.run(command(main), argv)
    except SystemExit as exc:  # argparse exits by itself on a bad flag
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def command(main):
    """``main`` as a command of its argv: a script's takes the flags and the run its start reads from them."""
    from mnistlab import flags, lab

    script = main.__module__
    return (lambda argv: main(args := flags.parse(script, argv), flags.prepare(script, args))) if script in lab.SCRIPTS else main


def histories_of_two_runs(main, argv, name, tmp_path, capsys):
    """Run a script's main twice with the same arguments; return both recorded histories."""
    histories = []
    for run in ("a", "b"):
        code, _, err = run_main(main, [*argv, "--out", str(tmp_path / run)], capsys)
        assert code == 0, err
        histories.append(json.loads((tmp_path / run / "results" / f"{name}.json").read_text())["history"])
    return histories
