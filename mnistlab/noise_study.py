"""Questions 4B and 4C's numbers and rules: the classifiers that score the digits, the per-level
autoencoders, the accuracy over noise draws and its figure, and the rules the report states."""

import itertools
import math
import os

import numpy as np
from matplotlib.figure import Figure

from mnistlab import cli, data, parallel, plots, records
from mnistlab.records import mean_std

READABLE = 0.90  # 4B: the accuracy below which we call noisy digits hard to read
HELPS_BY = 0.01  # 4B-4C: denoising helps where it gains more than this and than twice the draws' spread
CLASSIFIER_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd")
# The models questions 2-3 save with --save-model, and what the 4C figure calls them; on a tie
# in test accuracy, the later question's model.
NAMES = {"mlp_mnist": "lab MLP", "cnn_mnist": "lab CNN", "cnn_improved": "improved CNN"}
LAB_MLP = NAMES["mlp_mnist"]

# The classifiers

def classifiers(paths, results_dir):
    """{name: path} to score with: ``paths`` (--classifier), else the best model of questions 2-3
    saved in ``results_dir`` and the lab MLP (None if not saved: it is then trained)."""
    if paths:
        return {NAMES.get(stem, stem): path for path in paths for stem in [os.path.splitext(os.path.basename(path))[0]]}
    saved = {}
    for stem in NAMES:
        record = records.read(os.path.join(results_dir, f"{stem}.json"))
        path = os.path.join(results_dir, f"{stem}.keras")
        if os.path.isfile(path) and "test_accuracy" in record:
            saved[stem] = (record["test_accuracy"], path)
    found = {}
    if saved:
        best = max(saved, key=lambda stem: (saved[stem][0], list(NAMES).index(stem)))
        found[NAMES[best]] = saved[best][1]
    found.setdefault(LAB_MLP, saved.get("mlp_mnist", (None, None))[1])
    return found

def load_classifier(path):
    """A saved 10-class MNIST classifier (MLP or CNN), for predicting only."""
    import keras

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # a wrong path, a file of another kind, a truncated file
        raise cli.LabError(f"cannot load --classifier {path} ({type(exc).__name__}); "
                           "pass a .keras file written by mlp_mnist.py or cnn_mnist.py --save-model")
    inputs = model.input_shape[1:] if isinstance(model.input_shape, tuple) else ()
    if (model.output_shape != (None, data.CLASSES) or not all(isinstance(d, int) for d in inputs)
            or math.prod(inputs) != data.PIXELS):
        raise cli.LabError(f"--classifier {path} maps {model.input_shape} to {model.output_shape}, "
                           "expected 28x28 digits to 10 classes; pass an MNIST classifier")
    return model

# The per-level autoencoders

def level_weights_path(run, level):
    return os.path.join(run.state("per-level"), f"level-{level:g}.npz")

def train_levels(run, levels, train, load, trainings, beside):
    """``train(load(data file), level)`` on ``trainings`` for each of ``levels`` not saved yet, its
    weights kept as it finishes; ``beside()``, this process's own work, on the core they leave idle."""
    todo = [level for level in levels if not os.path.isfile(level_weights_path(run, level))]
    print(f"Training {plots.plural(len(todo), 'autoencoder')} for the noise levels of the accuracy study"
          + (f" ({len(levels) - len(todo)} already saved)" if len(todo) < len(levels) else "")
          + (f", {trainings.describe(len(todo))}" if todo else ""), flush=True)
    results = trainings.run(train, todo, load)
    for level, weights in parallel.with_work_beside(results, len(todo), trainings.slots(len(todo)), beside):
        records.write_atomic(level_weights_path(run, level), lambda tmp, weights=weights: np.savez(tmp, *weights))
        print(f"  autoencoder for noise {level:g} trained", flush=True)

def saved_level_weights(run, levels):
    """{level: weights} of the per-level autoencoders the run has trained."""
    weights = {}
    for level in levels:
        path = level_weights_path(run, level)
        if os.path.isfile(path):
            with np.load(path) as saved:
                weights[level] = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    return weights

# The accuracy study's numbers

def over_draws(key, per_level):
    """{key: the mean at each level, key_std: the standard deviation} over each level's draws."""
    means, stds = zip(*map(mean_std, per_level))
    return {key: list(means), f"{key}_std": list(stds)}

def by_level(record):
    """For each classifier of a record: [(level, noisy, noisy std, denoised, denoised std)]."""
    return {c["name"]: list(zip(record["noise_levels"], c["accuracy_noisy"], c["accuracy_noisy_std"],
                                c["accuracy_denoised"], c["accuracy_denoised_std"])) for c in record["classifiers"]}

# The rules

def helps(noisy, noisy_std, denoised, denoised_std):
    """Denoising helps where it gains more than HELPS_BY and than twice the draws' spread."""
    return denoised - noisy > max(HELPS_BY, 2 * max(noisy_std, denoised_std))

def hard_to_read(scores):  # the first (level, accuracy) below READABLE
    return next(((level, a) for level, a in scores if a < READABLE), (None, None))

def thresholds(levels):
    """Where noisy digits fall below READABLE, denoised ones stay above, denoising stops helping; if it helped."""
    hard = hard_to_read((level, noisy) for level, noisy, *_ in levels)[0]
    readable = list(itertools.takewhile(lambda row: row[3] >= READABLE, levels))  # denoised, from level 0 on
    kept = readable[-1][0] if readable else None
    helped, stops = False, None
    for level, *scores in levels:
        if helps(*scores):
            helped = True
        elif helped:
            stops = level
            break
    return hard, kept, stops, helped

# The figure

def plot_accuracy_study(study, mode, path):
    """Question 4C: each classifier on noisy (dashed), denoised (solid) and clean (dotted) digits."""
    levels = np.array(study["noise_levels"])
    ax = Figure(figsize=(8.4, 5.2)).subplots()
    for scores, color in zip(study["classifiers"], CLASSIFIER_COLORS):
        name = scores["name"]
        for key, style, marker in (("denoised", "-", "o"), ("noisy", "--", "x")):
            ax.errorbar(levels, 100 * np.array(scores[f"accuracy_{key}"]),
                        yerr=100 * np.array(scores[f"accuracy_{key}_std"]), linestyle=style,
                        marker=marker, capsize=3, color=color, label=f"{name}, {key} images")
        ax.axhline(100 * scores["accuracy_clean"], color=color, linestyle=":", linewidth=1.2,
                   label=f"{name}, clean images ({100 * scores['accuracy_clean']:.2f}%)")
    ax.axhline(10, color="#999999", linestyle="-.", linewidth=1, label="chance (10%)")
    ax.set(xlabel="salt-and-pepper noise level (fraction of pixels replaced)",
           ylabel="test accuracy = true-positive rate (%)", ylim=(0, 101),
           title=f"How far denoising rescues each classifier\n({mode}; "
                 f"mean ± std over {plots.plural(study['draws'], 'noise draw')})")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8.5, borderaxespad=0)  # beside: hides no line
    plots.save_figure(ax.figure, path)
