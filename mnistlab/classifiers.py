"""The classifiers question 4C scores noisy and denoised digits with: the best model of questions
2-3 that a folder saved, and the lab MLP; each loaded and checked to be an MNIST classifier."""

import math
import os

from mnistlab import lab, records
from mnistlab.errors import LabError

# The models questions 2-3 save with --save-model, and what the 4C figure calls them; on a tie
# in test accuracy, the later question's model.
NAMES = {"mlp_mnist": "lab MLP", "cnn_mnist": "lab CNN", "cnn_improved": "improved CNN"}
LAB_MLP = NAMES["mlp_mnist"]


def name_of(path):
    stem = os.path.splitext(os.path.basename(path))[0]
    return NAMES.get(stem, stem)


def chosen(paths, results_dir):
    """{name: path} to score with: ``paths`` (--classifier), else the best model of questions
    2-3 saved in ``results_dir`` and the lab MLP (None if not saved: it is then trained)."""
    if paths:
        return {name_of(path): path for path in paths}
    saved = {}
    for stem in NAMES:
        record = records.read_record(os.path.join(results_dir, f"{stem}.json"))
        path = os.path.join(results_dir, f"{stem}.keras")
        if os.path.isfile(path) and "test_accuracy" in record:
            saved[stem] = (record["test_accuracy"], path)
    found = {}
    if saved:
        order = list(NAMES)
        best = max(saved, key=lambda stem: (saved[stem][0], order.index(stem)))
        found[NAMES[best]] = saved[best][1]
    found.setdefault(LAB_MLP, saved.get("mlp_mnist", (None, None))[1])
    return found


def load(path):
    """A saved 10-class MNIST classifier (MLP or CNN), for predicting only."""
    import keras

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # a wrong path, a file of another kind, a truncated file
        raise LabError(f"cannot load --classifier {path} ({type(exc).__name__}); "
                       "pass a .keras file written by mlp_mnist.py or cnn_mnist.py --save-model")
    inputs = model.input_shape[1:] if isinstance(model.input_shape, tuple) else ()
    if (model.output_shape != (None, lab.CLASSES) or not all(isinstance(d, int) for d in inputs)
            or math.prod(inputs) != lab.PIXELS):
        raise LabError(f"--classifier {path} maps {model.input_shape} to {model.output_shape}, "
                       "expected 28x28 digits to 10 classes; pass an MNIST classifier")
    return model
