"""The CNN (question 3): both models' structure, training, every figure, the CLI."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import cnn_mnist
from conftest import CNN_FIGURES, ROOT, assert_png, histories_of_two_runs, prepared_digits, run_script
from mnistlab import flags, training

def test_lab_cnn_structure_and_parameter_count():
    model = cnn_mnist.build_lab_cnn()
    assert [type(layer).__name__ for layer in model.layers] == [
        "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense"]
    assert [layer.output.shape[1:] for layer in model.layers] == [
        (24, 24, 32), (12, 12, 32), (8, 8, 64), (4, 4, 64), (1024,), (10,)]
    assert model.layers[0].kernel_size == (5, 5) and model.layers[2].kernel_size == (5, 5)
    assert model.count_params() == 62_346


def test_improved_cnn_keeps_the_lab_convolutions_and_adds_regularisation():
    model = cnn_mnist.build_improved_cnn()
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds[:3] == ["RandomRotation", "RandomTranslation", "RandomZoom"]
    assert kinds.count("BatchNormalization") == 4 and kinds.count("Dropout") == 1
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [(c.filters, c.kernel_size) for c in convs] == [(32, (5, 5)), (64, (5, 5)), (128, (3, 3))]
    assert convs[2].output.shape[1:] == (4, 4, 128)
    assert model.count_params() == 654_506
    assert model.output_shape == (None, 10)


def test_augmentation_only_acts_in_training():
    augmentation = keras.Sequential(cnn_mnist.build_improved_cnn().layers[:3])
    x = np.random.default_rng(0).random((4, 28, 28, 1)).astype("float32")
    np.testing.assert_array_equal(augmentation(x, training=False), x)  # at test time, the digits as they are
    assert not np.allclose(augmentation(x, training=True), x)  # in training, turned, shifted and zoomed


def test_lab_cnn_training_lowers_the_loss():
    x, y = prepared_digits(256)
    x = x[..., np.newaxis]
    training.set_seed(0)
    model = training.compile_model(cnn_mnist.build_lab_cnn(),
                                   cnn_mnist.make_optimizer("adam", 1e-3, "constant", 1),
                                   "categorical_crossentropy")
    history = training.fit(model, x, y, epochs=3, batch_size=32, verbose=0)
    assert history["loss"][-1] < 0.5 * history["loss"][0]


# On TensorFlow: the batches Keras's array pipeline gives over two epochs, and whether tf.data
# tunes it, before training.compile_model and after it on a GPU, then on a CPU (a subprocess:
# the tests' own is on JAX).
UNTUNED_PROBE = """
import json
from mnistlab import backend, training
keras = backend.load(backend.choose("tensorflow"))
import numpy as np
from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter

x, y = np.arange(50, dtype="float32").reshape(25, 2), np.arange(25, dtype="float32")

def epochs():
    keras.utils.set_random_seed(0)
    dataset = ArrayDataAdapter(x, y, batch_size=4, shuffle=True).get_tf_dataset()
    return dataset.options().autotune.enabled, [[b[1].numpy().tolist() for b in dataset] for _ in range(2)]

def compiled_on(device):
    backend.device = lambda: device
    training.compile_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), "sgd", "mse", metrics=())
    return epochs()

tuned, on_a_gpu = epochs(), compiled_on("GPU: test")
print(json.dumps({"tuned": tuned, "on_a_gpu": on_a_gpu, "untuned": compiled_on("CPU: test")}))
"""


@pytest.mark.slow
def test_on_tensorflow_the_array_feed_is_untuned_and_gives_the_same_batches():
    """training.compile_model turns tf.data's autotuning off in Keras's array pipelines on
    TensorFlow on a CPU (tuned, most epochs began with seconds of idle waiting): the same
    batches, in the same order, in each of two epochs. On a GPU, where it was not measured,
    Keras's own feed stays."""
    result = subprocess.run([sys.executable, "-c", UNTUNED_PROBE], capture_output=True, text=True, cwd=ROOT,
                            timeout=300, env={"PATH": os.environ["PATH"], "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0 and result.stderr == "", result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    (tuned, tuned_epochs), (untuned, untuned_epochs) = found["tuned"], found["untuned"]
    assert found["on_a_gpu"] == found["tuned"]
    assert (tuned, untuned) == (None, False)  # None: unset, tf.data's default (tuning on)
    assert untuned_epochs == tuned_epochs
    assert [len(batch) for batch in untuned_epochs[0]] == [4] * 6 + [1]
    assert sorted(sum(untuned_epochs[0], [])) == list(range(25)) and untuned_epochs[0] != sorted(untuned_epochs[0])


def test_cosine_schedule_decays_to_zero():
    optimizer = cnn_mnist.make_optimizer("adam", 1e-3, "cosine", total_steps=100)
    schedule = optimizer._learning_rate  # the schedule itself; .learning_rate is its current value
    assert float(schedule(0)) == pytest.approx(1e-3)
    assert float(schedule(100)) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.slow
def test_a_quick_run_of_the_improved_cnn_writes_every_figure_and_the_results(tiny_npz, tmp_path):
    """As a user runs it, on the CNN's own backend (the improved CNN's augmentation compiles
    slowly on JAX, where the other tests in this process run): nothing on stderr, even with
    TensorFlow's C++ start-up lines let through (TF_CPP_MIN_LOG_LEVEL=0, as some users have it).
    The lab CNN's quick run is the Colab test's (tests/test_colab.py)."""
    result = run_script("cnn_mnist.py", "--data", tiny_npz, "--quick", "--model", "improved", "--out", str(tmp_path),
                        env={"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert result.returncode == 0 and result.stderr == "", result.stderr
    for figure in CNN_FIGURES:
        assert_png(tmp_path / "plots" / f"cnn_improved_{figure}.png")
    record = json.loads((tmp_path / "results" / "cnn_improved.json").read_text())
    assert record["status"] == "complete" and record["config"]["model"] == "improved"
    assert len(record["per_class_accuracy"]) == 10
    assert all(0 <= a <= 1 for a in record["per_class_accuracy"])
    assert len(record["history"]["loss"]) == 2 and record["wall_seconds"] > 0
    assert "test accuracy" in result.stdout


def test_default_epochs_depend_on_the_model():
    assert flags.parse("cnn_mnist", []).epochs == 12
    assert flags.parse("cnn_mnist", ["--model", "improved"]).epochs == 30
    assert flags.parse("cnn_mnist", ["--model", "improved", "--epochs", "3"]).epochs == 3


@pytest.mark.slow
def test_same_seed_gives_the_same_cnn_history(tiny_npz, tmp_path, capsys):
    first, second = histories_of_two_runs(cnn_mnist.main, ["--data", tiny_npz, "--epochs", "2", "--seed", "3"],
                                          "cnn_mnist", tmp_path, capsys)
    assert first == second
