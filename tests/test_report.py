"""The generated lab report: key numbers beside the references, every figure the run made."""

import json

from mnistlab import report


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_report_shows_numbers_references_times_and_existing_figures(tmp_path):
    env = {"cpu": "Test CPU", "cores": 2, "python": "3.11", "tensorflow": "2.21.0", "keras": "3.15.1",
           "jax": "0.10.2", "backend": "jax"}
    write(tmp_path / "results" / "mlp_mnist.json", {"test_accuracy": 0.9731, "wall_seconds": 9.0, "environment": env})
    write(tmp_path / "results" / "mlp_l2_study.json",
          {"rows": [{"l2": 1e-6, "mean": 0.9810, "std": 0.001}, {"l2": 2.5e-4, "mean": 0.9825, "std": 0.0005}],
           "settings": {"backend": "jax"}, "trials_run": 15, "workers": 2, "wall_seconds": 300.0})
    write(tmp_path / "results" / "cnn_mnist.json", {"test_accuracy": 0.9921, "wall_seconds": 80.0})
    write(tmp_path / "results" / "denoise_autoencoder.json",
          {"noise_levels": [0.0, 0.4, 0.6, 0.8], "total_wall_seconds": 60.0, "classifiers": [
              {"name": "lab CNN", "accuracy_noisy": [0.99, 0.62, 0.35, 0.2], "accuracy_denoised": [0.985, 0.95, 0.86, 0.5]},
              {"name": "lab MLP", "accuracy_noisy": [0.97, 0.43, 0.25, 0.15], "accuracy_denoised": [0.965, 0.91, 0.82, 0.5]}]})
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "mlp_l2_study.png").write_bytes(b"png")

    assert report.main(["--out", str(tmp_path)]) == 0
    text = (tmp_path / "REPORT.md").read_text()
    assert "Test CPU, 2 cores" in text and "TensorFlow 2.21.0" in text and "JAX 0.10.2" in text
    assert "| 2C. Lab MLP 64-64, test accuracy | 97.31% |" in text
    assert "(L2 0.00025), mean final val. accuracy | 98.25% ± 0.05% | lab report 98.30%; Hinton 98.47% |" in text
    assert "| 3. Lab CNN, test accuracy | 99.21% | lab report 99.15% |" in text
    assert "| 4C. lab CNN accuracy at noise 0.4: noisy → denoised | 62.00% → 95.00% | – |" in text
    assert "| 4C. lab MLP accuracy at noise 0.4: noisy → denoised | 43.00% → 91.00% | lab report's code: 43.2% → 90.9% |" in text
    assert "| 4C. lab MLP accuracy at noise 0.6: noisy → denoised | 25.00% → 82.00% | lab report: denoising holds up to about 0.6 |" in text
    assert "| **the lab's parts** | | **449** |" in text
    assert "| MLP (lab 2A-2C) | jax | 9 |" in text
    assert "| L2 study (lab 2D): 15 trials, 2 at a time | jax | 300 |" in text
    assert "![mlp_l2_study.png](plots/mlp_l2_study.png)" in text
    assert "cnn_mnist_filters.png" not in text  # not made by this run
    assert "how close to Hinton" not in text  # the experiment's runs are not here


def test_report_shows_the_hinton_experiment_when_its_runs_are_present(tmp_path):
    write(tmp_path / "results" / "mlp_mnist.json", {"test_accuracy": 0.97, "wall_seconds": 9.0})
    table = tmp_path / "experiments" / "hinton" / "results" / "mlp_l2_study_runs.md"
    table.parent.mkdir(parents=True)
    table.write_text("| run | differing flags |\n|---|---|\n| mlp_mnist-1 | study, study-epochs 100 |\n")
    assert report.main(["--out", str(tmp_path)]) == 0
    text = (tmp_path / "REPORT.md").read_text()
    assert "## 2D by experiment: how close to Hinton's 98.47%?" in text
    assert "| mlp_mnist-1 | study, study-epochs 100 |" in text and "selection on the test set" in text
    assert "![the arms compared](experiments/hinton/plots/mlp_l2_study_runs.png)" in text


def test_report_without_a_run_is_a_clear_error(tmp_path, capsys):
    assert report.main(["--out", str(tmp_path)]) == 2
    assert "run the lab first" in capsys.readouterr().err
