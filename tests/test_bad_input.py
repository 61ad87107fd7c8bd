"""Bad input: one line on stderr naming the problem and the fix, exit code 2, nothing written."""

import importlib.util
import os

import pytest

import cnn_mnist
import denoise_autoencoder
import mlp_mnist
from conftest import run_main, run_script, write_npz

MAINS = {"mlp": mlp_mnist.main, "cnn": cnn_mnist.main, "autoencoder": denoise_autoencoder.main}
# Every bad flag of the three scripts: (script, flags, what the one line says).
BAD_FLAGS = {
    "negative epochs": ("mlp", ["--epochs", "-1"], "--epochs: must be a positive whole number"),
    "zero epochs": ("mlp", ["--epochs", "0"], "--epochs: must be a positive whole number"),
    "fractional epochs": ("mlp", ["--epochs", "2.5"], "--epochs: must be a whole number"),
    "zero batch size": ("mlp", ["--batch-size", "0"], "--batch-size: must be a positive whole number"),
    "negative learning rate": ("mlp", ["--lr", "-0.1"], "--lr: must be greater than 0"),
    "NaN learning rate": ("mlp", ["--lr", "nan"], "--lr: must be finite"),
    "negative L2": ("mlp", ["--l2", "-0.0001"], "--l2: must be 0 or more"),
    "no replicates": ("mlp", ["--replicates", "0"], "--replicates: must be a positive whole number"),
    "negative seed": ("mlp", ["--seed", "-1"], "--seed: must be a whole number from 0 to 2147483647"),
    "seed too large": ("mlp", ["--seed", str(2**32)], "--seed: must be a whole number from 0 to 2147483647"),
    "unknown L2 layers": ("mlp", ["--l2-layers", "second"], "--l2-layers: invalid choice"),
    "unknown flag": ("mlp", ["--epocs", "3"], "unrecognized arguments"),
    "unknown CNN": ("cnn", ["--model", "resnet"], "argument --model: invalid choice"),
    "negative CNN epochs": ("cnn", ["--epochs", "-3"], "--epochs: must be a positive whole number"),
    "zero CNN learning rate": ("cnn", ["--lr", "0"], "--lr: must be greater than 0"),
    "word for a batch size": ("cnn", ["--batch-size", "x"], "--batch-size: must be a whole number"),
    "noise above 1": ("autoencoder", ["--noise", "1.5"], "--noise: must be a fraction in [0, 1]"),
    "negative noise": ("autoencoder", ["--noise", "-0.1"], "--noise: must be a fraction in [0, 1]"),
    "a level above 1": ("autoencoder", ["--levels", "0.2", "2"], "--levels: must be a fraction in [0, 1]"),
    "no draws": ("autoencoder", ["--draws", "0"], "--draws: must be a positive whole number"),
    "negative autoencoder epochs": ("autoencoder", ["--epochs", "-1"], "--epochs: must be a positive whole number"),
}


def assert_one_line_error(code, err, pattern):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert pattern in lines[0]


@pytest.mark.parametrize("case", BAD_FLAGS)
def test_bad_flag(case, tiny_npz, tmp_path, capsys):
    script, flags, pattern = BAD_FLAGS[case]
    code, _, err = run_main(MAINS[script], ["--data", tiny_npz, "--out", str(tmp_path / "o"), *flags], capsys)
    assert_one_line_error(code, err, pattern)
    assert "--help" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("script, address, pattern", [
    ("mlp", "tcp://127.0.0.1:1", "cannot reach the Dask scheduler at tcp://127.0.0.1:1 (Connection refused); check"),
    ("autoencoder", "tcp://127.0.0.1", "--cluster tcp://127.0.0.1 is not a scheduler address; pass tcp://HOST:PORT"),
    ("autoencoder", "nowhere.json", "scheduler file nowhere.json not found; start the scheduler with"),
])
def test_a_cluster_that_cannot_be_used_is_refused_before_any_training(script, address, pattern, tiny_npz, tmp_path, capsys):
    pytest.importorskip("distributed")  # requirements.txt has it; Colab's own packages may not
    code, out, err = run_main(MAINS[script], ["--quick", "--data", tiny_npz, "--out", str(tmp_path / "o"),
                                              "--cluster", address], capsys)
    assert_one_line_error(code, err, pattern)
    assert out == "" and not (tmp_path / "o").exists()


def test_cluster_without_dask_installed_names_the_fix(tiny_npz, tmp_path, capsys, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "distributed" else find_spec(name, *args))
    code, out, err = run_main(MAINS["mlp"], ["--data", tiny_npz, "--out", str(tmp_path / "o"),
                                             "--cluster", "tcp://127.0.0.1:8786"], capsys)
    assert_one_line_error(code, err, "--cluster needs Dask: pip install -r requirements.txt")
    assert not (tmp_path / "o").exists()


def test_missing_data_file_names_the_fix(tmp_path, capsys):
    code, _, err = run_main(mlp_mnist.main, ["--data", str(tmp_path / "x.npz"), "--out", str(tmp_path)], capsys)
    assert_one_line_error(code, err, "data file not found")
    assert "--data" in err and "MNIST_NPZ" in err
    assert os.listdir(tmp_path) == []


def test_wrong_shaped_data_file(tmp_path, capsys):
    import numpy as np

    path = write_npz(tmp_path / "bad.npz", x_test=np.zeros((200, 32, 32), np.uint8))
    code, _, err = run_main(mlp_mnist.main, ["--data", path, "--out", str(tmp_path / "o")], capsys)
    assert_one_line_error(code, err, "x_test")


def test_unwritable_output_folder(tiny_npz, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, _, err = run_main(mlp_mnist.main, ["--data", tiny_npz, "--out", str(blocker / "sub")], capsys)
    assert_one_line_error(code, err, "cannot write to")
    assert "--out" in err


@pytest.mark.slow
def test_script_exits_2_without_traceback_from_the_shell(tmp_path):
    result = run_script("mlp_mnist.py", "--data", str(tmp_path / "missing.npz"))
    assert result.returncode == 2
    assert result.stderr == (f"mlp_mnist.py: error: data file not found: {tmp_path / 'missing.npz'}; pass --data "
                             "/path/to/mnist.npz or set MNIST_NPZ to a local copy of Keras's mnist.npz\n")


@pytest.mark.slow
def test_help_shows_each_flag_with_its_lab_default():
    result = run_script("mlp_mnist.py", "--help")
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())
    for expected in ("--epochs EPOCHS training epochs (default: 20)", "(default: 128)",
                     "learning rate (default: 0.1)", "--replicates", "(default: 3)",
                     "(default: 40)", "--study", "--quick", "--seed", "--data", "--out",
                     "--l2-layers {all,first}", "kernels carry the L2 penalty", "(default: all)",
                     "--study-schedule {constant,cosine}", "(default: constant)"):
        assert expected in help_text, expected


def test_an_error_raised_because_ctrl_c_arrived_inside_a_c_call_is_a_stop(capsys):
    """Ctrl-C while TensorFlow traces a step can surface as a SystemError whose context is the
    KeyboardInterrupt: that is a stop, one line and exit 130, not a traceback."""
    from mnistlab import cli

    def main(argv):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise SystemError("<built-in function __import__> returned a result with an exception set")

    assert cli.run(main, [], prog="cnn_mnist.py") == 130
    assert capsys.readouterr().err == ("cnn_mnist.py: stopped (SIGINT); what had finished is saved, "
                                       "rerun the same command to go on\n")

    def other(argv):
        raise SystemError("a real bug")

    with pytest.raises(SystemError, match="a real bug"):
        cli.run(other, [], prog="cnn_mnist.py")
