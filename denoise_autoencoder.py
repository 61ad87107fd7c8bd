"""Lab question 4: a salt-and-pepper denoising autoencoder, how far it can be pushed, and what
its decoder alone can generate.

The autoencoder (Dense 128 relu, Dense 96 relu = the latent code, Dense 128 relu, Dense 784
sigmoid) learns to map noisy digits back to clean ones: adam, binary cross-entropy, noise level
0.4 on average (`--fixed-noise`: exactly 0.4, as the lab), 32 epochs with batch 64. Its
`encoder` and `decoder` halves are separate models that share its weights.

- 4B: the same ten test digits, noisy and denoised, at noise levels 0, 0.2, ..., 1.
- 4C: the accuracy of the best classifier of questions 2-3 (the lab CNN, when `cnn_mnist.py
  --save-model` has run) and of the lab MLP on clean, noisy and denoised test images against
  the noise level (one autoencoder for every level by default; `--per-level` retrains one at
  each level).
- 4D: new digits from the decoder alone: each class's mean code, interpolations between two
  digits, and random codes drawn from a Gaussian fitted to the training codes.

    python denoise_autoencoder.py               # its own folder in runs/, and the latest in plots/ and results/
    python denoise_autoencoder.py --per-level   # retrain at each level of --levels, as the lab report did
    python denoise_autoencoder.py --quick       # every figure on a small subset, in seconds
"""

import functools
import math
import os

from mnistlab import backend, cli, lab

FIGURE_LEVELS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # question 4B
STUDY_LEVELS = tuple(round(0.1 * i, 1) for i in range(11))  # question 4C
PIXELS = 28 * 28


# Command line


def parse_args(argv):
    parser = cli.make_parser(__doc__.split("\n\n")[0], epochs=32, batch_size=64, lr=1e-3,
                             quick_note="at most 2 epochs for every autoencoder and for a lab MLP "
                                        "trained here, and 2 noise draws per level",
                             lab_note="Lab settings: adam (lr 1e-3), binary cross-entropy, "
                                      "noise 0.4, 32 epochs, batch 64.")
    parser.add_argument("--noise", type=cli.fraction, default=0.4,
                        help="salt-and-pepper level the autoencoder is trained at: fresh noise every "
                             "epoch, each image's level drawn from a band of this mean (0-0.8 for 0.4)")
    parser.add_argument("--fixed-noise", action="store_true",
                        help="train on one noisy copy with every image at exactly --noise, as the lab did")
    parser.add_argument("--hidden", type=cli.positive_int, default=128, help="units around the code")
    parser.add_argument("--latent", type=cli.positive_int, default=96, help="size of the latent code")
    study = parser.add_argument_group("accuracy study (lab question 4C)")
    study.add_argument("--levels", type=cli.fraction, nargs="+", default=list(STUDY_LEVELS),
                       metavar="LEVEL", help="noise levels to score the classifier at")
    study.add_argument("--draws", type=cli.positive_int, default=3,
                       help="noise draws per level, for the error bars")
    study.add_argument("--per-level", action="store_true",
                       help="retrain an autoencoder at each level instead of using one for all")
    study.add_argument("--classifier", metavar="PATH", nargs="+",
                       help="saved .keras MNIST classifiers, MLP or CNN, to score the images with; "
                            "default: the best of questions 2-3 saved under the results folder "
                            "(the lab CNN after cnn_mnist.py --save-model) and the lab MLP "
                            "(mlp_mnist.py --save-model), trained here if not saved")
    study.add_argument("--classifier-epochs", type=cli.positive_int, default=lab.MLP_EPOCHS,
                       help="epochs for the lab MLP when it is trained here")
    cli.add_workers_flag(study, "--per-level autoencoders")
    args = cli.parse(parser, argv)
    cli.check_fits(cli.dense_parameters([PIXELS, args.hidden, args.latent, args.hidden, PIXELS]),
                   "the autoencoder", "--hidden or --latent")
    if args.quick:
        args.epochs, args.classifier_epochs, args.draws = min(args.epochs, 2), 2, min(args.draws, 2)
    return args


if __name__ == "__main__":
    cli.preflight(parse_args, "jax")  # before Keras loads: --help and bad input answer at once

# The dense models train several times faster on JAX than on TensorFlow on a CPU (see bench/);
# every backend works: KERAS_BACKEND=tensorflow python denoise_autoencoder.py
keras = backend.load("jax")
import matplotlib.pyplot as plt
import numpy as np

import mlp_mnist
from mnistlab import data, experiment, parallel, plots, results, runs, training
from mnistlab.errors import LabError


# Data


def flatten(split):
    """(N, 28, 28) images to (N, 784) vectors, the autoencoder's layout."""
    x, y = split
    return x.reshape(len(x), PIXELS), y


def load_images(path, quick):
    """Training and test splits: (N, 784) images in [0, 1] and one-hot labels."""
    return tuple(map(flatten, data.load_preprocessed(path, quick)))


def noisy_copy(x, level, seed):
    """Salt-and-pepper noise from its own seeded generator, so each draw is reproducible."""
    return data.salt_and_pepper(x, level, np.random.default_rng(seed)).astype("float32", copy=False)


def noise_band(level, fixed):
    """The range of training noise levels: ``level`` itself, or a band of mean ``level``."""
    return (level, level) if fixed else (max(0.0, 2 * level - 1), min(1.0, 2 * level))


def training_copy(x, level, fixed, seed):
    """Noisy training inputs, each image at its own level drawn from ``noise_band``."""
    low, high = noise_band(level, fixed)
    rng = np.random.default_rng(seed)
    levels = rng.uniform(low, high, size=(len(x), 1))
    return data.salt_and_pepper(x, levels, rng).astype("float32", copy=False)


def training_inputs(x, level, fixed, seed):
    """What the autoencoder trains on: the lab's one noisy copy at exactly ``level``
    (``fixed``), or by default fresh noise every epoch, each image at its own level in a band
    around ``level`` (0-0.8 for 0.4).

    Seeing lightly noisy and clean digits too, the autoencoder learns to leave them alone, and
    costs the classifier far less accuracy on clean digits (README).
    """
    if fixed:
        return training_copy(x, level, fixed, seed)
    return lambda epoch: training_copy(x, level, fixed, seed + epoch)


def describe_noise(level, fixed):
    low, high = noise_band(level, fixed)
    return f"noise {level:g}" if low == high else f"noise {low:g}-{high:g} (mean {level:g})"


# Model


def build_autoencoder(hidden=128, latent=96, pixels=PIXELS):
    """Return ``(autoencoder, encoder, decoder)``; the autoencoder is encoder then decoder."""
    encoder = keras.Sequential([
        keras.Input(shape=(pixels,)),
        keras.layers.Dense(hidden, activation="relu"),
        keras.layers.Dense(latent, activation="relu"),
    ], name="encoder")
    decoder = keras.Sequential([
        keras.Input(shape=(latent,)),
        keras.layers.Dense(hidden, activation="relu"),
        keras.layers.Dense(pixels, activation="sigmoid"),
    ], name="decoder")
    autoencoder = keras.Sequential([keras.Input(shape=(pixels,)), encoder, decoder],
                                   name="denoising_autoencoder")
    return autoencoder, encoder, decoder


def compile_autoencoder(model, lr):
    return training.compile_model(model, keras.optimizers.Adam(learning_rate=lr),
                                  "binary_crossentropy", metrics=())


# Training


# The models questions 2-3 save with --save-model, and what the 4C figure calls them.
CLASSIFIER_NAMES = {"mlp_mnist": "lab MLP", "cnn_mnist": "lab CNN", "cnn_improved": "improved CNN"}


def load_classifier(path):
    """A saved 10-class MNIST classifier (MLP or CNN) from --classifier."""
    try:
        model = keras.models.load_model(path, compile=False)  # it only predicts here
    except Exception as exc:  # a wrong path, a file of another kind, a truncated file
        raise LabError(f"cannot load --classifier {path} ({type(exc).__name__}); "
                       "pass a .keras file written by mlp_mnist.py or cnn_mnist.py --save-model")
    inputs = model.input_shape[1:] if isinstance(model.input_shape, tuple) else ()
    if (model.output_shape != (None, 10) or not all(isinstance(d, int) for d in inputs)
            or math.prod(inputs) != PIXELS):
        raise LabError(f"--classifier {path} maps {model.input_shape} to {model.output_shape}, "
                       "expected 28x28 digits to 10 classes; pass an MNIST classifier")
    return model


def classifier_name(path):
    stem = os.path.splitext(os.path.basename(path))[0]
    return CLASSIFIER_NAMES.get(stem, stem)


def saved_classifiers(results_dir):
    """Question 4C's classifiers: the best model of questions 2-3 saved in ``results_dir`` (by
    the test accuracy in its record) and the lab MLP, as {name: path}; the lab MLP's path is
    None when it was not saved, and it is then trained here."""
    saved = {}
    for stem in CLASSIFIER_NAMES:
        record = runs.read_record(os.path.join(results_dir, f"{stem}.json"))
        path = os.path.join(results_dir, f"{stem}.keras")
        if os.path.isfile(path) and "test_accuracy" in record:
            saved[stem] = (record["test_accuracy"], path)
    chosen = {}
    if saved:
        order = list(CLASSIFIER_NAMES)  # on a tie, the later question's model
        best = max(saved, key=lambda stem: (saved[stem][0], order.index(stem)))
        chosen[CLASSIFIER_NAMES[best]] = saved[best][1]
    chosen.setdefault(CLASSIFIER_NAMES["mlp_mnist"], saved.get("mlp_mnist", (None, None))[1])
    return chosen


def train_classifier(args, train, test):
    """The lab MLP (question 2) that scores the images, trained here through mlp_mnist.py."""
    print(f"\nTraining the lab MLP classifier ({args.classifier_epochs} epochs)")
    training.set_seed(args.seed)
    model = mlp_mnist.compile_mlp(mlp_mnist.build_mlp(), lab.MLP_LR)
    training.fit(model, *train, epochs=args.classifier_epochs, batch_size=lab.MLP_BATCH_SIZE,
                 validation_data=test)
    return model


def new_denoiser(args, seed):
    """A compiled lab autoencoder initialised from ``seed``: (autoencoder, encoder, decoder)."""
    training.set_seed(seed)
    models = build_autoencoder(args.hidden, args.latent)
    compile_autoencoder(models[0], args.lr)
    return models


def denoising_data(args, level, x_train, x_test, seed):
    """(noisy training inputs, clean targets) and (test images noisy at ``level``, clean targets)."""
    return ((training_inputs(x_train, level, args.fixed_noise, seed), x_train),
            (noisy_copy(x_test, level, seed + 1), x_test))


def train_denoiser(args, level, x_train, seed):
    """A fresh autoencoder trained from ``level``-noisy to clean images; returns it.

    Nothing reads its validation loss, so it trains without one.
    """
    autoencoder, _, _ = new_denoiser(args, seed)
    training.fit(autoencoder, training_inputs(x_train, level, args.fixed_noise, seed), x_train,
                 epochs=args.epochs, batch_size=args.batch_size, verbose=0)
    return autoencoder


def denoiser_weights(args, splits, level):
    """A worker's job for ``--per-level``: the weights of an autoencoder trained at ``level``."""
    (x_train, _), _ = splits
    return train_denoiser(args, level, x_train, args.seed).get_weights()


def level_weights_path(run, level):
    return os.path.join(run.state("per-level"), f"level-{level:g}.npz")


def train_other_levels(run, args):
    """Question 4C as the lab report did it: an autoencoder trained at each level of --levels
    but the training level, trained side by side on --workers cores; each one's weights are
    kept in the run's state as it finishes, so that a stopped run trains only the rest.

    (At the training level, retraining would rebuild the main autoencoder exactly: same seed,
    same data.)
    """
    others = [level for level in args.levels if level != args.noise]
    todo = [level for level in others if not os.path.isfile(level_weights_path(run, level))]
    workers = parallel.worker_count(args.workers, len(todo))
    print(f"Training {plots.plural(len(todo), 'autoencoder')} for the noise levels of the accuracy study"
          + (f" ({len(others) - len(todo)} already saved)" if len(todo) < len(others) else "")
          + (f", {workers} at a time" if todo else ""), flush=True)
    load = functools.partial(load_images, args.data, args.quick)
    for level, weights in parallel.run(functools.partial(denoiser_weights, args), todo, load, args.workers):
        results.write_atomic(level_weights_path(run, level), lambda tmp, weights=weights: np.savez(tmp, *weights))
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


def per_level_denoisers(args, autoencoder, weights):
    """A function of the noise level that returns the autoencoder trained at that level: one
    model loaded with that level's ``weights`` (one model, so its prediction is compiled once,
    not once a level), or the trained ``autoencoder`` for a level without weights of its own."""
    if not weights:
        return lambda level: autoencoder
    spare = build_autoencoder(args.hidden, args.latent)[0]

    def denoiser(level):
        if level not in weights:
            return autoencoder
        spare.set_weights(weights[level])
        return spare
    return denoiser


# Evaluation


def reconstruction_scores(clean, images):
    """Binary cross-entropy against the clean images, and PSNR in dB (None when identical)."""
    p = np.clip(images, 1e-7, 1 - 1e-7)
    bce = float(-np.mean(clean * np.log(p) + (1 - clean) * np.log(1 - p)))
    mse = float(np.mean((clean - images) ** 2))
    return bce, (10 * np.log10(1.0 / mse) if mse > 0 else None)


def accuracy(classifier, x, labels):
    """The fraction of images whose most likely class is the true one (the handout's
    true-positive rate), in the classifier's own input layout (MLP or CNN)."""
    x = x.reshape((-1, *classifier.input_shape[1:]))
    predictions = classifier.predict(x, batch_size=1024, verbose=0)
    return float(np.mean(predictions.argmax(axis=1) == labels))


def accuracy_study(args, classifiers, denoisers, x_test, labels):
    """For each classifier, the mean and std over noise draws of its accuracy on noisy and on
    denoised test images at each level; the same noisy and denoised images for every classifier."""
    scores = {name: {"clean": accuracy(model, x_test, labels), "noisy": [], "denoised": []}
              for name, model in classifiers.items()}
    for level in args.levels:
        denoiser = denoisers(level)
        per_draw = {name: [] for name in classifiers}
        for draw in range(args.draws):
            x_noisy = noisy_copy(x_test, level, args.seed + 1000 + draw)
            x_denoised = denoiser.predict(x_noisy, batch_size=1024, verbose=0)
            for name, model in classifiers.items():
                per_draw[name].append((accuracy(model, x_noisy, labels),
                                       accuracy(model, x_denoised, labels)))
        for name, draws in per_draw.items():
            draws = np.array(draws)
            scores[name]["noisy"].append(draws[:, 0])
            scores[name]["denoised"].append(draws[:, 1])
            print(f"  noise {level:.1f}, {name}: accuracy noisy {draws[:, 0].mean():.2%}, "
                  f"denoised {draws[:, 1].mean():.2%} (clean {scores[name]['clean']:.2%})", flush=True)
    return {"noise_levels": list(args.levels), "draws": args.draws,
            "classifiers": [{"name": name, "accuracy_clean": s["clean"],
                             **over_draws("accuracy_noisy", s["noisy"]), **over_draws("accuracy_denoised", s["denoised"])}
                            for name, s in scores.items()]}


def over_draws(key, per_level):
    """{key: the mean at each level, key_std: the standard deviation} over each level's draws."""
    means, stds = zip(*map(results.mean_std, per_level))
    return {key: list(means), f"{key}_std": list(stds)}


# Plots


def plot_denoising(autoencoder, x_test, labels, seed, path, title):
    """Question 4B: clean digits on top, then noisy and denoised rows at each noise level.

    Returns the reconstruction loss and PSNR of noisy and denoised test images at each level.
    """
    picks = np.array([np.flatnonzero(labels == digit)[0] for digit in range(10)])
    rows = [("clean", x_test[picks])]
    scores = []
    for level in FIGURE_LEVELS:
        noisy = noisy_copy(x_test, level, seed)
        denoised = autoencoder.predict(noisy, batch_size=1024, verbose=0)
        rows += [(f"noisy {level:.1f}", noisy[picks]), (f"denoised {level:.1f}", denoised[picks])]
        (bce_noisy, psnr_noisy), (bce_denoised, psnr_denoised) = (
            reconstruction_scores(x_test, noisy), reconstruction_scores(x_test, denoised))
        scores.append({"noise_level": level, "bce_noisy": bce_noisy, "bce_denoised": bce_denoised,
                       "psnr_noisy_db": psnr_noisy, "psnr_denoised_db": psnr_denoised})
    height = 1.08 * len(rows) + 0.8
    fig, axes = plt.subplots(len(rows), 10, figsize=(10.5, height))
    # Fixed margins (room for the row names on the left) instead of tight_layout, which costs
    # more than drawing the grid.
    fig.subplots_adjust(left=0.14, right=0.99, bottom=0.01, top=1 - 0.6 / height, wspace=0.05, hspace=0.08)
    for r, (name, images) in enumerate(rows):
        for c, image in enumerate(images):
            ax = axes[r, c]
            ax.imshow(image.reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
            ax.set(xticks=[], yticks=[])
            if c == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=10,
                              color="#b2182b" if name.startswith("noisy") else "black")
    fig.suptitle(f"{title}: the same ten test digits, noisy and denoised, at each noise level",
                 fontsize=12)
    plots.save_figure(fig, path)
    return scores


CLASSIFIER_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd")


def plot_accuracy_study(study, mode, path):
    """Question 4C: each classifier's accuracy on noisy (dashed) and denoised (solid) test
    images against the noise level, its accuracy on clean images as a dotted reference."""
    levels = np.array(study["noise_levels"])
    fig, ax = plt.subplots(figsize=(8.4, 5.2))
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
    plots.save_figure(fig, path)


def plot_class_means(decoder, codes, labels, path):
    """Question 4D: each digit class's mean latent code, decoded."""
    means = np.stack([codes[labels == digit].mean(axis=0) for digit in range(10)])
    images = decoder.predict(means, verbose=0)
    plots.plot_digit_grid(images, [f"class {d}" for d in range(10)], path,
                          "Decoded from each class's mean latent code (decoder alone)")


def plot_interpolations(encoder, decoder, x_test, labels, path, pairs=((1, 7), (3, 8), (4, 9)),
                        steps=10):
    """Question 4D: decoding codes on the straight line between two test digits' codes."""
    images, captions = [], []
    for a, b in pairs:
        ends = encoder.predict(np.stack([x_test[labels == a][0], x_test[labels == b][0]]), verbose=0)
        weights = np.linspace(0, 1, steps)[:, None]
        images += list(decoder.predict((1 - weights) * ends[0] + weights * ends[1], verbose=0))
        captions += [f"a {a}" if w == 0 else f"a {b}" if w == 1 else f"{1 - w:.0%} {a}\n{w:.0%} {b}"
                     for w in weights[:, 0]]
    plots.plot_digit_grid(images, captions, path,
                          "Walking the latent space: two test digits' codes mixed in steps, decoded "
                          "(captions: each code's share)", columns=steps)


def plot_random_codes(decoder, codes, seed, path, count=30):
    """Question 4D: new digits from random codes drawn from a Gaussian fitted to training codes."""
    rng = np.random.default_rng(seed)
    samples = rng.multivariate_normal(codes.mean(axis=0), np.cov(codes, rowvar=False), size=count)
    # The encoder's relu never emits negative codes; clipping keeps samples where it has trained.
    images = decoder.predict(np.maximum(samples, 0).astype("float32"), verbose=0)
    plots.plot_digit_grid(images, [f"sample {i + 1}" for i in range(count)], path,
                          "New digits: the decoder alone on random codes from a Gaussian "
                          "fitted to the training codes")


def train_autoencoder(run, args, images):
    """Questions 4A, 4B and 4D: the lab autoencoder, trained noisy -> clean and validated on the
    noisy test set; its denoising figure and the decoder's digits. Its weights are kept in the
    run's state for the accuracy study."""
    (x_train, y_train), (x_test, y_test) = images
    autoencoder, encoder, decoder = new_denoiser(args, args.seed)
    noise = describe_noise(args.noise, args.fixed_noise)
    record = experiment.train_and_report(
        run, autoencoder, *denoising_data(args, args.noise, x_train, x_test, args.seed),
        name="denoise_autoencoder", title=f"Denoising autoencoder (trained at {noise})",
        epochs=args.epochs, batch_size=args.batch_size, config=vars(args), save_model=args.save_model)
    test_labels = y_test.argmax(axis=1)
    reconstruction = plot_denoising(autoencoder, x_test, test_labels, args.seed, run.plot("denoise_examples.png"),
                                    f"Autoencoder trained at {noise}")
    run.write_record("denoise_autoencoder", {**record, "reconstruction": reconstruction})

    codes = encoder.predict(x_train, batch_size=1024, verbose=0)  # the training set's latent codes
    plot_class_means(decoder, codes, y_train.argmax(axis=1), run.plot("generate_class_means.png"))
    plot_interpolations(encoder, decoder, x_test, test_labels, run.plot("generate_interpolations.png"))
    plot_random_codes(decoder, codes, args.seed, run.plot("generate_random.png"))
    if args.save_model:
        results.save_model(encoder, run.result("encoder.keras"))
        results.save_model(decoder, run.result("decoder.keras"))
    results.write_atomic(os.path.join(run.state("autoencoder"), "autoencoder.weights.h5"), autoencoder.save_weights)


def study_accuracy(run, args, classifiers, images):
    """Question 4C: each classifier on clean, noisy and denoised test digits at every level."""
    (x_train, y_train), (x_test, y_test) = images
    autoencoder = build_autoencoder(args.hidden, args.latent)[0]
    autoencoder.load_weights(os.path.join(run.state("autoencoder"), "autoencoder.weights.h5"))
    if None in classifiers.values():  # no saved lab MLP: train it here
        classifiers = {name: model if model is not None else train_classifier(args, (x_train.reshape(-1, 28, 28), y_train),
                                                       (x_test.reshape(-1, 28, 28), y_test))
                       for name, model in classifiers.items()}
    if args.per_level:
        mode = ("an autoencoder retrained at each noise level" if args.fixed_noise
                else "an autoencoder retrained around each noise level")
    else:
        mode = f"one autoencoder trained at {describe_noise(args.noise, args.fixed_noise)} for every level"
    print(f"\nAccuracy study: {mode}")
    denoisers = per_level_denoisers(args, autoencoder, saved_level_weights(run, args.levels))
    study = accuracy_study(args, classifiers, denoisers, x_test, y_test.argmax(axis=1))
    plot_accuracy_study(study, mode, run.plot("denoise_accuracy.png"))
    run.write_record("denoise_autoencoder", {**run.read_record("denoise_autoencoder"), **study, "study_mode": mode})
    print(f"Wrote {run.result('denoise_autoencoder.json')} and figures under {run.plots}")


def main(argv=None):
    args = parse_args(argv)
    data.load_mnist(args.data)  # a bad data file fails here, before any training
    sources = ({classifier_name(path): path for path in args.classifier} if args.classifier
               else saved_classifiers(os.path.join(args.out, "results")))
    classifiers = {name: load_classifier(path) if path else None for name, path in sources.items()}
    # Loaded once, when a part first needs them: the per-level autoencoders train first, in
    # workers that load their own, while this process holds no images.
    images = functools.cache(functools.partial(load_images, args.data, args.quick))
    with runs.Run("denoise_autoencoder", args) as run:
        if args.per_level:
            run.part("per-level autoencoders", lambda: train_other_levels(run, args))
        run.part("autoencoder", lambda: train_autoencoder(run, args, images()))
        run.part("accuracy study", lambda: study_accuracy(run, args, classifiers, images()))
    return 0


if __name__ == "__main__":
    cli.exit_script(main)
