"""The lab MLP (questions 1-2): structure, training, figures, results, the resumable study."""

import json
import sys

import keras
import numpy as np
import pytest

import mlp_mnist
from conftest import assert_png, histories_of_two_runs, prepared_digits, run_main, strict_json
from mnistlab import backend, flags, internals, training


def test_lab_mlp_structure_and_parameter_count():
    model = mlp_mnist.build_mlp()
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Flatten", "Dense", "Dense", "Dense"]
    assert [layer.units for layer in model.layers[1:]] == [64, 64, 10]
    assert [layer.activation.__name__ for layer in model.layers[1:]] == ["relu", "relu", "softmax"]
    assert model.count_params() == 55_050
    assert model.output_shape == (None, 10)


def test_the_floor_benchmark_counts_the_lab_mlps_training_flop_as_a_hand_count_does():
    """bench/floor.py's FLOP per image, computed from the model's layers: 2 FLOP per multiply-add;
    forward and the weights' gradients of every layer, the inputs' gradients but the first's."""
    import os
    import sys

    from conftest import ROOT
    from mnistlab import plots

    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import floor

    forward = 2 * (784 * 64 + 64 * 64 + 64 * 10)
    by_hand = forward + forward + 2 * (64 * 64 + 64 * 10)
    assert floor.training_flop(plots.layer_table(mlp_mnist.build_mlp())) == by_hand == 229_120
    assert floor.training_flop(floor.dense_layers([784, 64, 64, 10])) == by_hand
    assert floor.forward_flop(floor.dense_layers([784, 64, 64, 10])) == forward


def test_study_mlp_puts_l2_on_every_hidden_layer_by_default():
    model = mlp_mnist.build_mlp((500, 300), l2=5e-4)
    assert model.count_params() == 784 * 500 + 500 + 500 * 300 + 300 + 300 * 10 + 10
    regularizers = [layer.kernel_regularizer for layer in model.layers[1:]]
    assert [float(r.l2) for r in regularizers[:2]] == pytest.approx([5e-4, 5e-4])
    assert regularizers[2] is None  # the output layer is not a hidden layer


def test_l2_layers_first_penalises_the_first_hidden_layer_only():
    model = mlp_mnist.build_mlp((500, 300), l2=5e-4, l2_layers="first")
    regularizers = [layer.kernel_regularizer for layer in model.layers[1:]]
    assert float(regularizers[0].l2) == pytest.approx(5e-4)
    assert regularizers[1:] == [None, None]


def test_l2_penalty_enters_the_loss_of_both_hidden_layers():
    x, y = prepared_digits((64))
    losses = {}
    for layers in ("first", "all"):
        training.set_seed(0)
        model = mlp_mnist.compile_mlp(mlp_mnist.build_mlp((32, 16), l2=0.1, l2_layers=layers), lr=0.1)
        losses[layers] = float(sum(model.losses))
    assert losses["all"] > losses["first"] > 0


@pytest.mark.slow
def test_study_cosine_schedule_decays_to_zero_over_the_study_epochs(tiny_npz, tmp_path, capsys, monkeypatch):
    seen = []
    real = mlp_mnist.compile_mlp
    monkeypatch.setattr(mlp_mnist, "compile_mlp", lambda *a: seen.append(a) or real(*a))
    code, _, err = run_main(mlp_mnist.main, ["--data", tiny_npz, "--epochs", "1", "--study", "--study-epochs", "3",
                                             "--study-hidden", "8", "--l2", "1e-4", "--replicates", "1",
                                             "--workers", "1", "--study-schedule", "cosine", "--out", str(tmp_path)],
                              capsys)
    assert code == 0, err
    model, lr, schedule, steps = seen[-1]
    assert (lr, schedule) == (0.1, "cosine")
    assert steps == 3 * -(-600 // 128)  # the study's epochs times the batches in one
    rate = model.optimizer.learning_rate  # after training: the schedule has run its course
    schedule_fn = model.optimizer._learning_rate
    assert float(schedule_fn(0)) == pytest.approx(0.1)
    assert float(schedule_fn(steps / 2)) == pytest.approx(0.05, rel=1e-3)
    assert float(schedule_fn(steps)) == pytest.approx(0.0, abs=1e-7) and float(rate) == pytest.approx(0.0, abs=1e-7)
    study = json.loads((tmp_path / "results" / "mlp_l2_study.json").read_text())
    assert study["settings"]["schedule"] == "cosine" and study["settings"]["l2_layers"] == "all"


def test_training_lowers_the_loss():
    x, y = prepared_digits((512))
    training.set_seed(0)
    model = mlp_mnist.compile_mlp(mlp_mnist.build_mlp(), lr=0.1)
    history = training.fit(model, x, y, epochs=4, batch_size=32, verbose=0)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["accuracy"][-1] > 0.9


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the scanned steps are JAX's")
def test_on_jax_the_scanned_steps_train_as_kerass_own_one_step_a_call():
    """training.compile_model runs STEPS_PER_EXECUTION batches as one scanned call on JAX: the same weights and
    history, to the bit, as Keras's own train function, an epoch's shorter last batches included."""
    x, y = prepared_digits(training.STEPS_PER_EXECUTION * 8 + 5)  # 32 batches of 8, then one of 5

    def trained(scanned):
        training.set_seed(0)
        model = mlp_mnist.compile_mlp(mlp_mnist.build_mlp(), lr=0.1)
        assert model.train_function is not None  # compile_model's: Keras's own comes at fit
        if not scanned:
            model.train_function = None
        history = training.fit(model, x, y, epochs=2, batch_size=8, verbose=0)
        return history, model.get_weights()

    (history, weights), (own_history, own_weights) = trained(True), trained(False)
    assert history == own_history and all(np.array_equal(a, b) for a, b in zip(weights, own_weights))


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the scanned steps are JAX's")
def test_on_jax_a_fit_is_fed_the_rows_numbers_and_the_scanned_steps_the_arrays():
    """training.fit hands Keras the rows' numbers, the scanned steps the arrays, for that fit only."""
    x, y = prepared_digits(64)
    model = mlp_mnist.compile_mlp(mlp_mnist.build_mlp(), lr=0.1)
    with internals.rows_fed(model, x, y, batch_size=8) as (fed, labels):
        assert labels is None and np.array_equal(fed, np.arange(len(x)))
        images, targets = model.train_function.rows
        assert np.array_equal(images, x) and np.array_equal(targets, y)
    assert model.train_function.rows is None


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the scanned steps are JAX's")
def test_a_keras_without_its_jax_epoch_iterator_is_fed_the_rows_themselves(monkeypatch):
    """Colab's own Keras, without the class ``rows_fed`` builds with: ``model.fit`` gets the rows themselves."""
    x, y = prepared_digits(64)
    model = mlp_mnist.compile_mlp(mlp_mnist.build_mlp(), lr=0.1)
    monkeypatch.setitem(sys.modules, "keras.src.backend.jax.trainer", None)  # its import fails
    with internals.rows_fed(model, x, y, batch_size=8) as (fed, labels):
        assert fed is x and labels is y and model.train_function.rows is None


def test_on_a_gpu_keras_keeps_its_own_train_function(monkeypatch):
    """The scanned steps were measured on a CPU only: on a GPU, Keras's own function trains."""
    monkeypatch.setattr(backend, "device", lambda: "GPU: a test's")
    assert mlp_mnist.compile_mlp(mlp_mnist.build_mlp(), lr=0.1).train_function is None


@pytest.mark.slow
def test_quick_run_writes_every_figure_and_the_results(tiny_npz, tmp_path, capsys):
    code, out, err = run_main(mlp_mnist.main, ["--data", tiny_npz, "--quick", "--out", str(tmp_path),
                                               "--save-model", "--workers", "1"], capsys)
    assert code == 0, err
    for name in ("mlp_mnist_accuracy.png", "mlp_mnist_loss.png", "mlp_mnist_model.png", "mlp_l2_study.png"):
        assert_png(tmp_path / "plots" / name)
    record = json.loads((tmp_path / "results" / "mlp_mnist.json").read_text())
    assert record["status"] == "complete"
    assert record["parameters"] == 55_050
    assert len(record["history"]["val_accuracy"]) == record["config"]["epochs"] == 2
    assert 0 <= record["test_accuracy"] <= 1 and record["test_loss"] > 0
    assert record["wall_seconds"] > 0 and record["config"]["lr"] == 0.1
    study = json.loads((tmp_path / "results" / "mlp_l2_study.json").read_text())
    assert [row["l2"] for row in study["rows"]] == list(flags.L2_FACTORS)
    assert all(row["replicates"] == 2 for row in study["rows"])
    assert "| L2 factor |" in out and "trial 10/10" in out

    import keras
    reloaded = keras.models.load_model(tmp_path / "results" / "mlp_mnist.keras")
    assert reloaded.count_params() == 55_050


@pytest.mark.slow
def test_same_seed_gives_the_same_numbers(tiny_npz, tmp_path, capsys):
    first, second = histories_of_two_runs(mlp_mnist.main, ["--data", tiny_npz, "--epochs", "2", "--seed", "7"],
                                          "mlp_mnist", tmp_path, capsys)
    assert first == second


@pytest.mark.slow
def test_interrupted_study_resumes_without_redoing_trials(tiny_npz, tmp_path, capsys, monkeypatch):
    argv = ["--data", tiny_npz, "--study", "--epochs", "1", "--study-epochs", "1",
            "--study-hidden", "16", "--l2", "1e-4", "1e-3", "--replicates", "2", "--workers", "1",
            "--out", str(tmp_path)]
    real_trial, calls = mlp_mnist.run_trial, []

    def interrupted_after_three(settings, splits, job):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(job)
        return real_trial(settings, splits, job)

    monkeypatch.setattr(mlp_mnist, "run_trial", interrupted_after_three)
    code, _, err = run_main(mlp_mnist.main, argv, capsys)
    assert code == 130 and "rerun the same command" in err
    [store] = (tmp_path / "runs").glob("mlp_mnist-*/results/mlp_l2_study_trials.json")  # in the run's folder
    saved = json.loads(store.read_text())
    assert [(t["l2"], t["replicate"]) for t in saved["trials"]] == calls == [(1e-4, 0), (1e-4, 1), (1e-3, 0)]

    [folder] = (tmp_path / "runs").iterdir()
    meta = json.loads((folder / "run.json").read_text())
    assert meta["status"] == "interrupted in L2 study"
    assert {name: part["status"] for name, part in meta["parts"].items()} == {"lab MLP": "complete",
                                                                              "L2 study": "interrupted"}

    calls.clear()
    monkeypatch.setattr(mlp_mnist, "run_trial", lambda *a: calls.append(a[2]) or real_trial(*a))
    code, out, err = run_main(mlp_mnist.main, argv, capsys)
    assert code == 0, err
    assert calls == [(1e-3, 1)]
    assert "lab MLP: finished in an earlier session of this run" in out and "Epoch 1/1" not in out
    assert "L2 study: going on where it stopped" in out and "3 already saved" in out
    assert list((tmp_path / "runs").iterdir()) == [folder]  # the same run went on
    parts = json.loads((folder / "run.json").read_text())["parts"]
    assert all(part["status"] == "complete" and part["wall_seconds"] > 0 for part in parts.values())

    # the same numbers as a run that was never stopped
    monkeypatch.undo()
    assert run_main(mlp_mnist.main, argv + ["--out", str(tmp_path / "whole")], capsys)[0] == 0
    for name in ("mlp_mnist", "mlp_l2_study"):
        resumed, whole = (json.loads((out / "results" / f"{name}.json").read_text()) for out in (tmp_path, tmp_path / "whole"))
        assert resumed.get("history") == whole.get("history") and resumed.get("rows") == whole.get("rows")
    assert [row["replicates"] for row in resumed["rows"]] == [2, 2]


@pytest.mark.slow
def test_changed_settings_do_not_reuse_trials(tiny_npz, tmp_path, capsys):
    base = ["--data", tiny_npz, "--study", "--epochs", "1", "--study-hidden", "16", "--l2", "1e-4",
            "--replicates", "1", "--out", str(tmp_path)]
    assert run_main(mlp_mnist.main, base + ["--study-epochs", "1"], capsys)[0] == 0
    code, out, _ = run_main(mlp_mnist.main, base + ["--study-epochs", "2"], capsys)
    assert code == 0 and "0 already saved" in out


@pytest.mark.slow
def test_a_diverging_run_says_so_stops_and_writes_strict_json(tiny_npz, tmp_path, capsys):
    code, out, err = run_main(mlp_mnist.main, ["--data", tiny_npz, "--epochs", "3", "--lr", "1e30", "--hidden", "8",
                                               "--study", "--study-epochs", "2", "--study-hidden", "8",
                                               "--l2", "1e-4", "--replicates", "2", "--workers", "1",
                                               "--out", str(tmp_path)], capsys)
    assert code == 0 and err == ""
    assert "the training diverged and stops here; try a smaller --lr" in out
    assert "diverged in epoch 1 (try a smaller --lr)" in out

    for path in (tmp_path / "results").glob("*.json"):
        strict_json(path)
    record = strict_json(tmp_path / "results" / "mlp_mnist.json")
    assert record["diverged_at_epoch"] == 1 and len(record["history"]["loss"]) == 1
    assert record["history"]["loss"] == [None]
    study = strict_json(tmp_path / "results" / "mlp_l2_study.json")
    assert study["rows"][0]["mean"] is None and study["rows"][0]["diverged"] == 2
    assert "| 0.0001 | 2 (2 diverged) | – | – | – |" in out
    assert_png(tmp_path / "plots" / "mlp_l2_study.png")
    assert_png(tmp_path / "plots" / "mlp_mnist_runs.png")
