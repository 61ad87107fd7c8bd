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

from mnistlab import flags

args, run = flags.start(__name__, "denoise_autoencoder", __doc__)  # --help and bad input answer before Keras loads

import functools
import os

import keras
import numpy as np

import mlp_mnist  # the lab MLP of question 2, trained here when no saved one scores 4C
from mnistlab import cli, data, lab, noise_study, parallel, plots, records, training

NAME = "denoise_autoencoder"  # its record, figures and saved model

# The data (question 1)

def load_data(path=None, quick=False):
    """MNIST: each image 784 pixels as float32 in [0, 1] (the autoencoder's layout), labels one-hot."""
    (x_train, y_train), (x_test, y_test) = data.load_mnist(path, quick)
    x_train = data.scale(x_train).reshape(-1, data.PIXELS)
    x_test = data.scale(x_test).reshape(-1, data.PIXELS)
    y_train = keras.utils.to_categorical(y_train, data.CLASSES)
    y_test = keras.utils.to_categorical(y_test, data.CLASSES)
    return (x_train, y_train), (x_test, y_test)

def training_inputs(x, level, fixed, seed):
    """The lab's one noisy copy at ``level`` (``fixed``), or fresh noise every epoch, each image at a
    level around ``level``: seeing clean digits too, it learns to leave them alone (docs/scripts.md)."""
    if fixed:
        return data.training_copy(x, level, fixed, seed)
    return lambda epoch: data.training_copy(x, level, fixed, seed + epoch)

# Question 4A: the model and its loss

def build_autoencoder(hidden, latent):
    """Return ``(autoencoder, encoder, decoder)``; the autoencoder is encoder then decoder."""
    pixels, hidden, latent, _, _ = data.autoencoder_sizes(hidden, latent)
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
    autoencoder = keras.Sequential([keras.Input(shape=(pixels,)), encoder, decoder], name="denoising_autoencoder")
    return autoencoder, encoder, decoder

def compile_autoencoder(model, lr):
    """Adam on the per-pixel binary cross-entropy between the output and the clean image."""
    return training.compile_model(model, keras.optimizers.Adam(learning_rate=lr), "binary_crossentropy", metrics=())

def new_denoiser(args, seed):
    """A compiled lab autoencoder initialised from ``seed``: (autoencoder, encoder, decoder)."""
    training.set_seed(seed)
    autoencoder, encoder, decoder = build_autoencoder(args.hidden, args.latent)
    compile_autoencoder(autoencoder, args.lr)
    return autoencoder, encoder, decoder

# Questions 4A, 4B and 4D: training, the denoising figure and the decoder's digits

def train_autoencoder(run, args, images):
    """Fit the lab autoencoder noisy -> clean, evaluate it, draw its figures (4B, 4D)."""
    (x_train, y_train), (x_test, y_test) = images
    autoencoder, encoder, decoder = new_denoiser(args, args.seed)
    plots.print_summary(autoencoder)
    x_test_noisy = data.noisy_copy(x_test, args.noise, args.seed + 1)
    checkpoint = training.checkpoint(run, NAME, args)
    history = training.fit(autoencoder, training_inputs(x_train, args.noise, args.fixed_noise, args.seed), x_train,
                           epochs=args.epochs, batch_size=args.batch_size, validation_data=(x_test_noisy, x_test),
                           checkpoint=checkpoint)
    scores = training.evaluate(autoencoder, x_test_noisy, x_test, args.batch_size)

    noise = data.describe_noise(args.noise, args.fixed_noise)
    test_labels = y_test.argmax(axis=1)
    plots.plot_training(history, autoencoder, run.plot, NAME, f"Denoising autoencoder (trained at {noise})")
    reconstruction = plot_denoising(autoencoder, x_test, test_labels, args.seed, run.plot("denoise_examples.png"),
                                    f"Autoencoder trained at {noise}")
    codes = encoder.predict(x_train, batch_size=1024, verbose=0)  # the training set's latent codes
    plot_class_means(decoder, codes, y_train.argmax(axis=1), run.plot("generate_class_means.png"))
    plot_interpolations(encoder, decoder, x_test, test_labels, run.plot("generate_interpolations.png"))
    plot_random_codes(decoder, codes, args.seed, run.plot("generate_random.png"))
    if args.save_model:
        for model, name in ((autoencoder, NAME), (encoder, "encoder"), (decoder, "decoder")):
            records.write_atomic(run.result(f"{name}.keras"), model.save)
    records.write_atomic(os.path.join(run.state("autoencoder"), "autoencoder.weights.h5"), autoencoder.save_weights)
    run.write_record(NAME, {**checkpoint.record(autoencoder, history, scores,
                                                examples={"train": len(x_train), "test": len(x_test)}),
                            "reconstruction": reconstruction})

def reconstruction_scores(clean, images):
    """Binary cross-entropy against the clean images, and PSNR in dB (None when identical)."""
    p = np.clip(images, 1e-7, 1 - 1e-7)
    bce = float(-np.mean(clean * np.log(p) + (1 - clean) * np.log(1 - p)))
    mse = float(np.mean((clean - images) ** 2))
    return bce, (10 * np.log10(1.0 / mse) if mse > 0 else None)

def plot_denoising(autoencoder, x_test, labels, seed, path, title):
    """Question 4B: clean, noisy and denoised digits at each level; returns each level's BCE and PSNR."""
    picks = np.array([np.flatnonzero(labels == digit)[0] for digit in np.unique(labels)])  # each digit the set holds
    rows = [("clean", x_test[picks])]
    scores = []
    for level in lab.NOISE_FIGURE_LEVELS:
        noisy = data.noisy_copy(x_test, level, seed)
        denoised = autoencoder.predict(noisy, batch_size=1024, verbose=0)
        rows += [(f"noisy {level:.1f}", noisy[picks]), (f"denoised {level:.1f}", denoised[picks])]
        (bce_noisy, psnr_noisy), (bce_denoised, psnr_denoised) = (
            reconstruction_scores(x_test, noisy), reconstruction_scores(x_test, denoised))
        scores.append({"noise_level": level, "bce_noisy": bce_noisy, "bce_denoised": bce_denoised,
                       "psnr_noisy_db": psnr_noisy, "psnr_denoised_db": psnr_denoised})
    fig, _, _ = plots.image_grid([image.reshape(28, 28) for _, images in rows for image in images], len(picks),
                                 size=1.0, gap=0.06, band=0.06, left=1.25, top=0.7, framed=True, cmap="gray_r",
                                 vmin=0, vmax=1, names=[(name, "#b2182b" if name.startswith("noisy") else "black")
                                                        for name, _ in rows])
    count = "ten" if len(picks) == 10 else len(picks)
    fig.suptitle(f"{title}: the same {count} test digits, noisy and denoised, at each noise level", fontsize=12)
    plots.save_figure(fig, path)
    return scores

def plot_class_means(decoder, codes, labels, path):
    """Question 4D: each digit class's mean latent code, decoded."""
    digits = np.unique(labels)  # each class the training set holds
    means = np.stack([codes[labels == digit].mean(axis=0) for digit in digits])
    images = decoder.predict(means, verbose=0)
    plots.plot_digit_grid(images, [f"class {d}" for d in digits], path,
                          "Decoded from each class's mean latent code (decoder alone)")

WALKS, STEPS = ((1, 7), (3, 8), (4, 9)), 10  # 4D: the pairs of digits walked between, in how many steps
RANDOM_DIGITS = 30  # 4D: digits drawn from random codes

def plot_interpolations(encoder, decoder, x_test, labels, path):
    """Question 4D: decoding codes on the straight line between two test digits' codes."""
    images, captions = [], []
    for a, b in [(a, b) for a, b in WALKS if np.isin([a, b], labels).all()]:  # pairs the test set holds
        ends = encoder.predict(np.stack([x_test[labels == a][0], x_test[labels == b][0]]), verbose=0)
        weights = np.linspace(0, 1, STEPS)[:, None]
        images += list(decoder.predict((1 - weights) * ends[0] + weights * ends[1], verbose=0))
        captions += [f"a {a}" if w == 0 else f"a {b}" if w == 1 else f"{1 - w:.0%} {a}\n{w:.0%} {b}"
                     for w in weights[:, 0]]
    plots.plot_digit_grid(images, captions, path,
                          "Walking the latent space: two test digits' codes mixed in steps, decoded "
                          "(captions: each code's share)", columns=STEPS)

def plot_random_codes(decoder, codes, seed, path):
    """Question 4D: new digits from random codes drawn from a Gaussian fitted to training codes."""
    rng = np.random.default_rng(seed)
    # A diverged encoder's codes are not numbers: its figure shows what such a decoder makes of 0s.
    mean, cov = np.nan_to_num(codes.mean(axis=0)), np.nan_to_num(np.cov(codes, rowvar=False))
    samples = rng.multivariate_normal(mean, cov, size=RANDOM_DIGITS)
    # The encoder's relu never emits negative codes; clipping keeps samples where it has trained.
    images = decoder.predict(np.maximum(samples, 0).astype("float32"), verbose=0)
    plots.plot_digit_grid(images, [f"sample {i + 1}" for i in range(RANDOM_DIGITS)], path,
                          "New digits: the decoder alone on random codes from a Gaussian "
                          "fitted to the training codes")

# Question 4C: the classifiers' accuracy against the noise level

def train_denoiser(args, splits, level):
    """An autoencoder's weights trained from ``level``-noisy to clean images, unvalidated (--per-level)."""
    (x_train, _), _ = splits
    autoencoder, _, _ = new_denoiser(args, args.seed)
    training.fit(autoencoder, training_inputs(x_train, level, args.fixed_noise, args.seed), x_train,
                 epochs=args.epochs, batch_size=args.batch_size, verbose=0)
    return autoencoder.get_weights()

# Question 4B's stand-in for an eye that knows what salt-and-pepper noise looks like: the lab
# MLP trained on noisy digits, each at its own level from 0 to 1, fresh noise every epoch. (A
# classifier trained on clean digits only measures how far noise it never saw confuses it.)
READER = "lab MLP trained on noisy digits of every level"

def train_lab_mlp(args, x, y, test, what):
    """The lab MLP trained here as ``what`` on ``x`` (or a function of the epoch), validated at its end."""
    print(f"\nTraining {what} ({args.classifier_epochs} epochs)")
    training.set_seed(args.seed)
    model = mlp_mnist.compile_mlp(mlp_mnist.build_mlp(), lab.MLP_LR)
    training.fit(model, x, y, epochs=args.classifier_epochs, batch_size=lab.MLP_BATCH_SIZE, validation_data=test,
                 validation_freq=args.classifier_epochs)
    return model

def per_level_denoisers(args, autoencoder, weights):
    """The autoencoder for a level: one model (compiled once) loaded with its ``weights``, else ``autoencoder``."""
    if not weights:
        return lambda level: autoencoder
    spare = build_autoencoder(args.hidden, args.latent)[0]

    def denoiser(level):
        if level not in weights:
            return autoencoder
        spare.set_weights(weights[level])
        return spare
    return denoiser

def accuracy(classifier, x, labels):
    """The share of images whose most likely class is the true one (the handout's true-positive rate)."""
    x = x.reshape((-1, *classifier.input_shape[1:]))
    predictions = classifier.predict(x, batch_size=1024, verbose=0)
    return float(np.mean(predictions.argmax(axis=1) == labels))

def accuracy_study(args, classifiers, reader, denoisers, x_test, labels):
    """Each classifier's accuracy over noise draws on noisy and denoised digits; the ``reader``'s on noisy."""
    scores = {name: {"clean": accuracy(model, x_test, labels), "noisy": [], "denoised": []}
              for name, model in classifiers.items()}
    read = {"clean": accuracy(reader, x_test, labels), "noisy": []}
    for level in args.levels:
        denoiser = denoisers(level)
        per_draw, read_per_draw = {name: [] for name in classifiers}, []
        for draw in range(args.draws):
            x_noisy = data.noisy_copy(x_test, level, args.seed + 1000 + draw)
            x_denoised = denoiser.predict(x_noisy, batch_size=1024, verbose=0)
            read_per_draw.append(accuracy(reader, x_noisy, labels))
            for name, model in classifiers.items():
                per_draw[name].append((accuracy(model, x_noisy, labels), accuracy(model, x_denoised, labels)))
        read["noisy"].append(read_per_draw)
        for name, draws in per_draw.items():
            draws = np.array(draws)
            scores[name]["noisy"].append(draws[:, 0])
            scores[name]["denoised"].append(draws[:, 1])
            print(f"  noise {level:.1f}, {name}: accuracy noisy {draws[:, 0].mean():.2%}, "
                  f"denoised {draws[:, 1].mean():.2%} (clean {scores[name]['clean']:.2%})", flush=True)
    return {"noise_levels": list(args.levels), "draws": args.draws,
            "classifiers": [{"name": name, "accuracy_clean": s["clean"],
                             **noise_study.over_draws("accuracy_noisy", s["noisy"]),
                             **noise_study.over_draws("accuracy_denoised", s["denoised"])}
                            for name, s in scores.items()],
            "reader": {"name": READER, "accuracy_clean": read["clean"],
                       **noise_study.over_draws("accuracy_noisy", read["noisy"])}}

def study_accuracy(run, args, models, images):
    """Each classifier of ``models`` (None: trained here) on clean, noisy and denoised digits."""
    (x_train, y_train), (x_test, y_test) = images
    autoencoder = build_autoencoder(args.hidden, args.latent)[0]
    autoencoder.load_weights(os.path.join(run.state("autoencoder"), "autoencoder.weights.h5"))
    digits, test = x_train.reshape(-1, 28, 28), (x_test.reshape(-1, 28, 28), y_test)  # the MLP's layout
    models = {name: model or train_lab_mlp(args, digits, y_train, test, "the lab MLP classifier")
              for name, model in models.items()}
    if args.per_level:
        mode = ("an autoencoder retrained at each noise level" if args.fixed_noise
                else "an autoencoder retrained around each noise level")
    else:
        mode = f"one autoencoder trained at {data.describe_noise(args.noise, args.fixed_noise)} for every level"
    print(f"\nAccuracy study: {mode}")
    every_level = lambda epoch: data.training_copy(x_train, 0.5, False, args.seed + 2000 + epoch).reshape(digits.shape)
    reader = train_lab_mlp(args, every_level, y_train, test, f"4B's reader, the {READER}")
    denoisers = per_level_denoisers(args, autoencoder, noise_study.saved_level_weights(run, args.levels))
    study = accuracy_study(args, models, reader, denoisers, x_test, y_test.argmax(axis=1))
    noise_study.plot_accuracy_study(study, mode, run.plot("denoise_accuracy.png"))
    run.write_record(NAME, {**run.read_record(NAME), **study, "study_mode": mode})
    print(f"Wrote {run.result(NAME + '.json')} and figures under {run.plots}")

def main(args, run):
    """The autoencoder (4A, 4B, 4D), the per-level ones and the accuracy study (4C), each a part of ``run``."""
    models = {name: noise_study.load_classifier(path) if path else None
              for name, path in noise_study.classifiers(args.classifier, os.path.join(args.out, "results")).items()}
    # Loaded once, when a part first needs them: the per-level autoencoders train first, in
    # workers that load their own, while this process holds no images.
    load = functools.partial(load_data, quick=args.quick)
    images = functools.cache(functools.partial(load, args.data))
    with run:
        autoencoder = functools.cache(lambda: run.part("autoencoder", lambda: train_autoencoder(run, args, images())))
        if args.per_level:
            # At the training level, retraining would rebuild the main autoencoder exactly. The main
            # one trains here on the core the last of them leave idle.
            others = [level for level in args.levels if level != args.noise]
            run.part("per-level autoencoders", noise_study.train_levels, run, others,
                     functools.partial(train_denoiser, args), load, parallel.trainings(NAME, args), autoencoder)
        autoencoder()  # unless it has trained beside them
        run.part("accuracy study", lambda: study_accuracy(run, args, models, images()))
    return 0

if __name__ == "__main__":
    cli.exit_command(main, args, run)
