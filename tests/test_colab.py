"""What a Colab user runs, the lab's one command (`python -m mnistlab.lab --quick`): exit 0 and
nothing on stderr, whatever TensorFlow package is installed (the full one probes for CUDA on a
machine without a GPU), not even TensorFlow's C++ start-up lines where TF_CPP_MIN_LOG_LEVEL=0
lets them through; stopped in the middle, one line, and the same command goes on without running
the finished parts again. Its quick runs are the scripts' normal runs from the terminal.
`make test-colab` runs it on Colab's own versions."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import CNN_FIGURES, ROOT, assert_png, user_env


def started(out, script):
    """Whether a run of ``script`` has made its folder under ``out``."""
    runs = out / "runs"
    return runs.is_dir() and any(p.name.startswith(f"{script}-") and (p / "run.json").exists() for p in runs.iterdir())


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_the_quick_lab_runs_quietly_stops_in_one_line_and_goes_on(tiny_npz, tmp_path):
    """On the real MNIST where MNIST_NPZ names it (as in CI), else on the tests' tiny data."""
    real = os.path.isfile(os.environ.get("MNIST_NPZ", ""))
    data = os.environ["MNIST_NPZ"] if real else tiny_npz
    command = [sys.executable, "-m", "mnistlab.lab", "--quick", "--out", str(tmp_path)]
    env = user_env({"MNIST_NPZ": data})
    # The first command lets TensorFlow's C++ lines through, as some users do: none of the start-up
    # lines shows. (Training, TensorFlow 2.20 then says more: what the user asked for.)
    lab = subprocess.Popen(command, cwd=ROOT, env={**env, "TF_CPP_MIN_LOG_LEVEL": "0"}, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not started(tmp_path, "cnn_mnist") and lab.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    lab.send_signal(signal.SIGTERM)  # to the lab command alone, as `kill` sends it: the CNN's part stops too
    stdout, stderr = lab.communicate(timeout=300)
    assert lab.returncode == 128 + signal.SIGTERM, stderr
    assert stderr == "cnn_mnist.py: stopped (SIGTERM); what had finished is saved, rerun the same command to go on\n"
    assert stdout.startswith("== mlp_mnist\nTraining on ")

    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("mlp_mnist: finished in the lab stopped earlier; not run again\n== cnn_mnist\n")
    assert "Resuming run cnn_mnist-" in result.stdout
    devices = [line.split("Training on ")[1].split(" (")[0] for line in (stdout + result.stdout).splitlines()
               if line.startswith("Training on ")]
    devices = [devices[0], *devices[-2:]]  # the MLP's, then the rerun's CNN and autoencoder
    assert all(d.startswith(("CPU: ", "GPU: ")) for d in devices)
    for script, device in zip(("mlp_mnist", "cnn_mnist", "denoise_autoencoder"), devices):
        record = json.loads((tmp_path / "results" / f"{script}.json").read_text())
        assert record["environment"]["device"] == device
    assert (tmp_path / "REPORT.md").is_file() and not (tmp_path / "runs" / "lab.json").exists()
    for figure in CNN_FIGURES:
        assert_png(tmp_path / "plots" / f"cnn_mnist_{figure}.png")
    cnn = json.loads((tmp_path / "results" / "cnn_mnist.json").read_text())
    assert cnn["status"] == "complete" and len(cnn["history"]["loss"]) == 2 and cnn["wall_seconds"] > 0
    assert len(cnn["per_class_accuracy"]) == 10 and all(0 <= a <= 1 for a in cnn["per_class_accuracy"])
    assert "test accuracy" in result.stdout
    if real:  # each model learns the real digits, well above chance (10%), after a quick run
        mlp, autoencoder = (json.loads((tmp_path / "results" / f"{name}.json").read_text())
                            for name in ("mlp_mnist", "denoise_autoencoder"))
        assert mlp["test_accuracy"] > 0.5 and cnn["test_accuracy"] > 0.5 and cnn["parameters"] == 62_346
        assert all(c["accuracy_denoised"][0] > 0.5 for c in autoencoder["classifiers"])
