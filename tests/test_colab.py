"""What a Colab user runs first, `--quick` of each script in the order of `make quick`, and the
report: exit 0 and nothing on stderr, whatever TensorFlow package is installed (the full one
probes for CUDA on a machine without a GPU). `make test-colab` runs it on Colab's own versions."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, run_script


@pytest.mark.slow
def test_the_quick_lab_runs_quietly_and_names_its_device(tiny_npz, tmp_path):
    data = os.environ.get("MNIST_NPZ") if os.path.isfile(os.environ.get("MNIST_NPZ", "")) else tiny_npz
    for script in ("mlp_mnist.py", "cnn_mnist.py", "denoise_autoencoder.py"):
        result = run_script(script, "--quick", "--save-model", "--data", data, "--out", str(tmp_path))
        assert result.returncode == 0 and result.stderr == "", result.stderr
        assert result.stdout.startswith("Training on CPU: ") or result.stdout.startswith("Training on GPU: ")
        record = json.loads((tmp_path / "results" / f"{script[:-3]}.json").read_text())
        assert record["environment"]["device"] == result.stdout.splitlines()[0].split("Training on ")[1].split(" (")[0]
    report = subprocess.run([sys.executable, "-m", "mnistlab.report", "--out", str(tmp_path)],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert report.returncode == 0 and report.stderr == ""
