"""The denoising autoencoder (question 4): structure, shared weights, training, figures, CLI."""

import json
import os

import numpy as np
import pytest

import denoise_autoencoder as dae
from conftest import assert_png, made_once, prepared_digits, run_main
from mnistlab import data, lab, records, training

def flat(split):
    """Prepared digits as the autoencoder reads them: 784-vectors."""
    x, y = split
    return x.reshape(len(x), -1), y


FIGURES = ("denoise_autoencoder_loss.png", "denoise_autoencoder_model.png", "denoise_examples.png",
           "denoise_accuracy.png", "generate_class_means.png", "generate_interpolations.png",
           "generate_random.png")


def test_structure_and_parameter_count():
    autoencoder, encoder, decoder = dae.build_autoencoder(128, 96)
    dense = [layer for part in (encoder, decoder) for layer in part.layers]
    assert [layer.units for layer in dense] == [128, 96, 128, 784]
    assert [layer.activation.__name__ for layer in dense] == ["relu", "relu", "relu", "sigmoid"]
    assert autoencoder.count_params() == 226_416
    assert encoder.output_shape == (None, 96) and decoder.input_shape == (None, 96)
    assert autoencoder.output_shape == (None, 784)


def test_encoder_then_decoder_equals_the_autoencoder_after_training():
    x, _ = flat(prepared_digits(128))
    training.set_seed(0)
    autoencoder, encoder, decoder = dae.build_autoencoder(128, 96)
    dae.compile_autoencoder(autoencoder, 1e-3)
    training.fit(autoencoder, x, x, epochs=1, batch_size=32, verbose=0)
    direct = autoencoder.predict(x, verbose=0)
    np.testing.assert_allclose(decoder.predict(encoder.predict(x, verbose=0), verbose=0), direct,
                               atol=1e-6)
    assert direct.min() >= 0 and direct.max() <= 1


def test_training_lowers_the_denoising_loss():
    x, _ = flat(prepared_digits(512))
    training.set_seed(0)
    autoencoder, _, _ = dae.build_autoencoder(128, 96)
    dae.compile_autoencoder(autoencoder, 1e-3)
    history = training.fit(autoencoder, data.noisy_copy(x, 0.4, 0), x, epochs=5, batch_size=64, verbose=0)
    # The random background of the test digits keeps the cross-entropy floor high.
    assert history["loss"][-1] < 0.8 * history["loss"][0]


def test_reconstruction_scores():
    clean = np.array([[0.0, 1.0, 1.0, 0.0]])
    bce, psnr = dae.reconstruction_scores(clean, clean)
    assert bce < 1e-5 and psnr is None
    bce, psnr = dae.reconstruction_scores(clean, np.full_like(clean, 0.5))
    assert bce == pytest.approx(np.log(2), rel=1e-5)
    assert psnr == pytest.approx(10 * np.log10(1 / 0.25))


@pytest.mark.slow
def test_quick_run_writes_every_figure_and_the_results(tiny_npz, tmp_path, capsys):
    code, out, err = run_main(dae.main, ["--data", tiny_npz, "--quick", "--out", str(tmp_path),
                                         "--levels", "0", "0.5", "1", "--save-model"], capsys)
    assert code == 0, err
    for figure in FIGURES:
        assert_png(tmp_path / "plots" / figure)
    record = json.loads((tmp_path / "results" / "denoise_autoencoder.json").read_text())
    assert record["noise_levels"] == [0.0, 0.5, 1.0] and record["parameters"] == 226_416
    [scores] = record["classifiers"]  # no model saved in this folder: the lab MLP, trained here
    assert scores["name"] == "lab MLP" and "Training the lab MLP" in out
    for key in ("accuracy_noisy", "accuracy_denoised", "accuracy_noisy_std", "accuracy_denoised_std"):
        assert len(scores[key]) == 3 and all(0 <= v <= 1 for v in scores[key])
    assert scores["accuracy_noisy"][0] == scores["accuracy_clean"]  # level 0 changes nothing
    assert [r["noise_level"] for r in record["reconstruction"]] == list(lab.NOISE_FIGURE_LEVELS)
    assert record["reconstruction"][0]["psnr_noisy_db"] is None
    assert "one autoencoder" in record["study_mode"]
    assert (tmp_path / "results" / "encoder.keras").is_file()


@pytest.mark.slow
def test_per_level_retrains_at_each_level_and_reuses_a_saved_classifier(tiny_npz, tmp_path, capsys,
                                                                         monkeypatch):
    import mlp_mnist

    assert run_main(mlp_mnist.main, ["--data", tiny_npz, "--epochs", "2", "--save-model",
                                     "--out", str(tmp_path)], capsys)[0] == 0
    trained = []
    real = dae.train_denoiser
    monkeypatch.setattr(dae, "train_denoiser", lambda args, splits, level: trained.append(level) or real(args, splits, level))
    code, out, err = run_main(dae.main, ["--data", tiny_npz, "--quick", "--per-level", "--workers", "1",
                                         "--levels", "0.2", "0.6",
                                         "--classifier", str(tmp_path / "results" / "mlp_mnist.keras"),
                                         "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert trained == [0.2, 0.6]
    assert "Training the lab MLP" not in out
    record = json.loads((tmp_path / "results" / "denoise_autoencoder.json").read_text())
    assert "retrained around each noise level" in record["study_mode"]


PER_LEVEL = ["--per-level", "--workers", "1", "--levels", "0.2", "0.5", "--epochs", "2", "--draws", "1",
             "--classifier-epochs", "1"]


@pytest.fixture(scope="module")
def uninterrupted_per_level(tiny_npz, tmp_path_factory):
    """The record of a --per-level run that was never stopped, on the backend of the tests' own."""
    import subprocess
    import sys

    from conftest import ROOT, user_env

    def make(out):
        subprocess.run([sys.executable, "denoise_autoencoder.py", "--data", tiny_npz, *PER_LEVEL, "--out", str(out)],
                       check=True, capture_output=True, cwd=ROOT,
                       env=user_env({"KERAS_BACKEND": os.environ["KERAS_BACKEND"]}))
    out = made_once(tmp_path_factory, f"uninterrupted_per_level_{os.environ['KERAS_BACKEND']}", make)
    return json.loads((out / "results" / "denoise_autoencoder.json").read_text())


class StopAfterEpoch1(training.BackupAndRestore):
    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        raise KeyboardInterrupt


def stop_in(part, monkeypatch):
    """Make the run stop like Ctrl-C inside ``part``, once that part has done some of its work."""
    if part == "per-level autoencoders":  # once the first level's autoencoder is saved
        real = records.write_atomic

        def write_atomic(path, write, **kwargs):
            real(path, write, **kwargs)
            if path.endswith(".npz"):
                raise KeyboardInterrupt
        monkeypatch.setattr(records, "write_atomic", write_atomic)
    elif part == "autoencoder":  # once its first epoch is backed up
        monkeypatch.setattr(training, "BackupAndRestore", StopAfterEpoch1)
    else:  # while it scores the classifiers
        monkeypatch.setattr(dae, "accuracy_study", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt))


@pytest.mark.slow
@pytest.mark.parametrize("part", ["per-level autoencoders", "autoencoder", "accuracy study"])
def test_a_stop_in_each_part_goes_on_there_and_ends_as_an_uninterrupted_run(part, tiny_npz, tmp_path, capsys,
                                                                             monkeypatch, uninterrupted_per_level):
    argv = ["--data", tiny_npz, *PER_LEVEL, "--out", str(tmp_path)]
    stop_in(part, monkeypatch)
    code, _, err = run_main(dae.main, argv, capsys)
    assert code == 130, err
    [folder] = (tmp_path / "runs").iterdir()
    statuses = {name: p["status"] for name, p in json.loads((folder / "run.json").read_text())["parts"].items()}
    order = ["per-level autoencoders", "autoencoder", "accuracy study"]
    finished = order[:order.index(part)]
    assert statuses == {**{name: "complete" for name in finished},
                        part: "interrupted at epoch 2" if part == "autoencoder" else "interrupted"}

    monkeypatch.undo()
    code, out, err = run_main(dae.main, argv, capsys)
    assert code == 0, err
    for name in finished:
        assert f"{name}: finished in an earlier session of this run" in out
    assert f"{part}: going on where it stopped" in out
    trained_here = out.split(f"{part}: going on")[1]
    if part == "per-level autoencoders":
        assert "Training 1 autoencoder for the noise levels of the accuracy study (1 already saved)" in out
    elif part == "autoencoder":
        assert "after epoch 1 of 2" in out and "Epoch 1/2" not in trained_here.split("Test loss")[0]
    else:
        assert "Epoch 1/2" not in trained_here  # the autoencoder's epochs (the classifier trains for 1)
    record = json.loads((tmp_path / "results" / "denoise_autoencoder.json").read_text())
    for key in ("history", "reconstruction", "classifiers", "noise_levels"):
        assert record[key] == uninterrupted_per_level[key], key
    assert not (folder / "state").exists()


@pytest.mark.slow
def test_4c_scores_with_the_saved_cnn_and_the_lab_mlp(tiny_npz, tmp_path, capsys):
    import cnn_mnist
    import mlp_mnist

    # both learn the tiny digits (the CNN wins a tie, as the later question's model)
    for main, extra in ((mlp_mnist.main, []), (cnn_mnist.main, ["--batch-size", "32"])):
        assert run_main(main, ["--data", tiny_npz, "--epochs", "2", "--save-model", "--out", str(tmp_path), *extra],
                        capsys)[0] == 0
    code, out, err = run_main(dae.main, ["--data", tiny_npz, "--quick", "--levels", "0", "0.5",
                                         "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert "Training the lab MLP" not in out  # both were loaded from the results folder
    record = json.loads((tmp_path / "results" / "denoise_autoencoder.json").read_text())
    assert [c["name"] for c in record["classifiers"]] == ["lab CNN", "lab MLP"]
    cnn_record = json.loads((tmp_path / "results" / "cnn_mnist.json").read_text())
    # the CNN scores the clean test images here exactly as cnn_mnist.py did
    assert record["classifiers"][0]["accuracy_clean"] == pytest.approx(cnn_record["test_accuracy"], abs=1e-6)

    code, _, err = run_main(dae.main, ["--data", tiny_npz, "--quick", "--levels", "0.5", "--out", str(tmp_path / "b"),
                                       "--classifier", str(tmp_path / "results" / "cnn_mnist.keras")], capsys)
    assert code == 0, err
    record = json.loads((tmp_path / "b" / "results" / "denoise_autoencoder.json").read_text())
    assert [c["name"] for c in record["classifiers"]] == ["lab CNN"]


def test_a_classifier_of_another_input_shape_is_a_clear_error(tiny_npz, tmp_path, capsys):
    import keras

    path = tmp_path / "rows.keras"
    keras.Sequential([keras.Input((28,)), keras.layers.Dense(10, activation="softmax")]).save(path)
    code, _, err = run_main(dae.main, ["--data", tiny_npz, "--quick", "--classifier", str(path),
                                       "--out", str(tmp_path)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "maps (None, 28) to (None, 10), expected 28x28 digits to 10 classes" in err


def test_unloadable_classifier_is_a_clear_error(tiny_npz, tmp_path, capsys):
    bad = tmp_path / "broken.keras"
    bad.write_text("not a model")
    code, _, err = run_main(dae.main, ["--data", tiny_npz, "--quick", "--classifier", str(bad),
                                       "--out", str(tmp_path)], capsys)
    assert code == 2 and "cannot load --classifier" in err and len(err.strip().splitlines()) == 1


def test_training_noise_band_has_the_requested_mean():
    x = np.full((4000, 784), 0.5, dtype=np.float32)
    assert data.noise_band(0.4, fixed=False) == (0.0, 0.8)
    assert data.noise_band(0.7, fixed=False) == pytest.approx((0.4, 1.0))
    assert data.noise_band(0.4, fixed=True) == (0.4, 0.4)
    per_image = (data.training_copy(x, 0.4, False, 0) != 0.5).mean(axis=1)
    assert per_image.mean() == pytest.approx(0.4, abs=0.01)
    assert per_image.min() < 0.05 and per_image.max() > 0.75
    fixed = (data.training_copy(x, 0.4, True, 0) != 0.5).mean(axis=1)
    assert fixed.min() > 0.3 and fixed.max() < 0.5


def test_default_training_draws_fresh_noise_every_epoch_and_fixed_keeps_one_copy():
    x = np.full((50, 784), 0.5, dtype=np.float32)
    fresh = dae.training_inputs(x, 0.4, fixed=False, seed=0)
    assert callable(fresh)
    assert not np.array_equal(fresh(0), fresh(1))
    np.testing.assert_array_equal(fresh(3), fresh(3))  # each epoch's draw is reproducible
    assert isinstance(dae.training_inputs(x, 0.4, fixed=True, seed=0), np.ndarray)


def test_fit_with_inputs_per_epoch_calls_once_an_epoch_and_keeps_one_history():
    x, _ = flat(prepared_digits(64))
    autoencoder, _, _ = dae.build_autoencoder(128, 96)
    dae.compile_autoencoder(autoencoder, 1e-3)
    asked = []
    history = training.fit(autoencoder, lambda epoch: asked.append(epoch) or x, x, epochs=3,
                           batch_size=32, validation_data=(x, x), verbose=0)
    assert asked == [0, 1, 2]
    assert len(history["loss"]) == len(history["val_loss"]) == 3


def test_the_next_epochs_inputs_are_made_while_this_epoch_trains():
    import threading

    made = {epoch: threading.Event() for epoch in range(3)}

    def make(epoch):
        made[epoch].set()
        return f"inputs {epoch}"
    epochs = training.made_ahead(make, range(3))
    assert next(epochs) == (0, "inputs 0")
    assert made[1].wait(timeout=10)  # made before the caller asks for it
    assert not made[2].is_set()  # no further ahead: two epochs' inputs in memory at most
    assert list(epochs) == [(1, "inputs 1"), (2, "inputs 2")]
