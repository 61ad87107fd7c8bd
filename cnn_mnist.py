"""Lab question 3: a convolutional network beats the MLP on MNIST, and its figures show why.

The lab CNN (Conv2D 32 5x5 relu, MaxPooling2D 2x2, Conv2D 64 5x5 relu, MaxPooling2D 2x2,
Flatten, Dense 10 softmax; 62,346 parameters) learns local stroke detectors that are shared
across the image, and max pooling (question 3A) keeps each detector's strongest response while
halving the resolution, so small shifts of a digit barely change what the network sees. The
figures show the learned filters, the feature maps after each convolution and pooling, the
confusion matrix and the digits the network still gets wrong.

`--model improved` adds what a careful practitioner would: light augmentation, batch
normalisation, a hidden dense layer with dropout, and a longer cosine-decayed schedule.

    python cnn_mnist.py                     # the lab CNN: its own folder in runs/, and the latest in plots/ and results/
    python cnn_mnist.py --model improved    # the improved CNN
    python cnn_mnist.py --quick             # every figure on a small subset, in seconds
"""

from mnistlab import flags

args, run = flags.start(__name__, "cnn_mnist", __doc__)  # --help and bad input answer before Keras loads

import math

import keras
import numpy as np
from matplotlib.figure import Figure

from mnistlab import cli, data, lab, plots, records, training
from mnistlab.records import percent

NAMES = {"lab": "cnn_mnist", "improved": "cnn_improved"}  # each model's record, figures and saved model
TITLES = {"lab": "Lab CNN", "improved": "Improved CNN"}

# The data (question 1)

def load_data(path=None, quick=False):
    """MNIST as 28x28x1 images (the channel axis Conv2D expects) in [0, 1], float32, labels one-hot."""
    (x_train, y_train), (x_test, y_test) = data.load_mnist(path, quick)
    x_train, x_test = data.scale(x_train)[..., np.newaxis], data.scale(x_test)[..., np.newaxis]
    y_train = keras.utils.to_categorical(y_train, data.CLASSES)
    y_test = keras.utils.to_categorical(y_test, data.CLASSES)
    return (x_train, y_train), (x_test, y_test)

# Question 3A: the model

def build_lab_cnn():
    """The lab's CNN, exactly: two 5x5 convolutions, each followed by 2x2 max pooling."""
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        keras.layers.Conv2D(32, 5, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(64, 5, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(data.CLASSES, activation="softmax"),
    ], name="lab_cnn")

def build_improved_cnn():
    """The lab CNN's two convolutions (their shapes kept) plus augmentation (in training only),
    batch norm, a third small convolution on 4x4 maps, a dense layer and dropout."""
    def conv_bn_relu(filters, size, **kwargs):
        # No bias: batch normalisation's shift does that job.
        return [keras.layers.Conv2D(filters, size, use_bias=False, **kwargs),
                keras.layers.BatchNormalization(), keras.layers.Activation("relu")]

    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        keras.layers.RandomRotation(10 / 360, fill_mode="constant"),  # up to 10 degrees
        keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant"),  # up to 2-3 pixels
        keras.layers.RandomZoom(0.1, fill_mode="constant"),
        *conv_bn_relu(32, 5), keras.layers.MaxPooling2D(2),
        *conv_bn_relu(64, 5), keras.layers.MaxPooling2D(2),
        *conv_bn_relu(128, 3, padding="same"),
        keras.layers.Flatten(),
        keras.layers.Dense(256, use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.Activation("relu"),
        keras.layers.Dropout(0.4),
        keras.layers.Dense(data.CLASSES, activation="softmax"),
    ], name="improved_cnn")

BUILDERS = {"lab": build_lab_cnn, "improved": build_improved_cnn}

def make_optimizer(name, lr, schedule, total_steps):
    """Adam or SGD (momentum 0.9), at a constant rate or cosine-decayed to 0 over the run."""
    lr = training.learning_rate(lr, schedule, total_steps)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=lr)
    return keras.optimizers.SGD(learning_rate=lr, momentum=0.9)

# Question 3A: training, evaluation and figures

def train_and_plot(run, args, train, test):
    """Build, compile, fit, evaluate and plot the CNN of ``--model``; returns its record."""
    (x_train, y_train), (x_test, y_test) = train, test
    name, title = NAMES[args.model], TITLES[args.model]
    training.set_seed(args.seed)
    model = BUILDERS[args.model]()
    steps = args.epochs * math.ceil(len(x_train) / args.batch_size)
    training.compile_model(model, make_optimizer(args.optimizer, args.lr, args.schedule, steps),
                           "categorical_crossentropy")
    plots.print_summary(model)
    checkpoint = training.checkpoint(run, name, args)
    history = training.fit(model, x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                           validation_data=(x_test, y_test), checkpoint=checkpoint)
    scores = training.evaluate(model, x_test, y_test, args.batch_size)
    true = y_test.argmax(axis=1)
    probabilities = model.predict(x_test, batch_size=args.batch_size, verbose=0)

    plots.plot_training(history, model, run.plot, name, title)
    counts = plots.plot_confusion_matrix(true, probabilities.argmax(axis=1),
                                         run.plot(f"{name}_confusion.png"), f"{title} on the test set")
    plot_misclassified(x_test, true, probabilities, run.plot(f"{name}_misclassified.png"), title)
    plot_filters(model, run.plot(f"{name}_filters.png"), title)
    plot_feature_maps(model, x_test[0], int(true[0]), run.plot(f"{name}_feature_maps.png"), title)
    if args.save_model:
        records.write_atomic(run.result(f"{name}.keras"), model.save)
    record = run.write_record(name, {**checkpoint.record(model, history, scores,
                                                         examples={"train": len(y_train), "test": len(y_test)}),
                                     "per_class_accuracy": per_class_accuracy(counts)})
    verdict = "reaches" if record["test_accuracy"] >= lab.LAB_REPORT_CNN else "falls short of"
    print(f"{title}: test accuracy {percent(record['test_accuracy'])} {verdict} the lab's {percent(lab.LAB_REPORT_CNN)}")
    return record

# Question 3A's numbers and figures, from the trained model

def per_class_accuracy(counts):
    """Accuracy for each true digit from a confusion matrix (None for a digit the test set lacks)."""
    return [int(right) / int(total) if total else None for right, total in zip(np.diag(counts), counts.sum(axis=1))]

SUREST_ERRORS = 40  # of the misclassified digits, those drawn
FEATURE_MAPS, INCHES_PER_PIXEL = 16, 0.05  # maps drawn per stage, and at what size

def plot_misclassified(x, true, probabilities, path, title):
    """The misclassified test digits the model was most confident about."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != true)
    wrong = wrong[np.argsort(-probabilities[wrong, predicted[wrong]])][:SUREST_ERRORS]
    captions = [f"true {true[i]}, said {predicted[i]}\n{probabilities[i, predicted[i]]:.0%} sure" for i in wrong]
    plots.plot_digit_grid(x[wrong], captions, path,
                          f"{title}: the {len(wrong)} wrong answers it was surest of "
                          f"(of {len(np.flatnonzero(predicted != true))} errors)")

def plot_filters(model, path, title):
    """The first convolution's kernels, red for positive and blue for negative weights."""
    conv = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    kernels = conv.get_weights()[0][:, :, 0, :]
    count, limit = kernels.shape[-1], np.abs(kernels).max()
    fig, ax, image = plots.image_grid(np.moveaxis(kernels, -1, 0), 8, size=0.75, gap=0.28, band=0.3, right=1.2,
                                      top=0.9, captions=[f"filter {i + 1}" for i in range(count)], framed=True,
                                      fontsize=8, cmap="RdBu_r", vmin=-limit, vmax=limit)
    fig.suptitle(f"{title}: the {count} learned {kernels.shape[0]}×{kernels.shape[1]} filters "
                 f"of the first convolution\nred weights respond to ink at that spot, blue to its "
                 f"absence: edge and stroke detectors", fontsize=11)
    (_, _, width, height), (fig_w, fig_h) = ax.get_position().bounds, fig.get_size_inches()
    fig.colorbar(image, cax=fig.add_axes((width + 0.35 / fig_w, 0.1 * height, 0.22 / fig_w, 0.8 * height)),
                 label="weight")
    plots.save_figure(fig, path)

def feature_stages(model):
    """Question 3A's stages and names: each convolution's block up to its ReLU, and each pooling."""
    layers, stages = model.layers, []
    for i, layer in enumerate(layers):
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.MaxPooling2D)):
            end = i
            while isinstance(layer, keras.layers.Conv2D) and end + 1 < len(layers) and isinstance(
                    layers[end + 1], (keras.layers.BatchNormalization, keras.layers.Activation)):
                end += 1
            stages.append((layers[end], plots.describe_layer(layer) + (" + batch norm + ReLU" if end > i else "")))
    return stages

def plot_feature_maps(model, image, label, path, title):
    """One digit's maps after each stage (question 3A), all to one scale: each pooling's halving shows."""
    stages = feature_stages(model)
    probe = keras.Model(model.inputs[0], [layer.output for layer, _ in stages])
    maps = [image[..., :1]] + [np.asarray(m)[0] for m in probe(image[np.newaxis], training=False)]
    names = [f"input: a {label}"] + [name for _, name in stages]
    columns, gap, label_width, title_height = FEATURE_MAPS // 2, 0.08, 2.3, 0.6
    widths = [(1 if i == 0 else columns) * (m.shape[1] * INCHES_PER_PIXEL + gap) for i, m in enumerate(maps)]
    heights = [(1 if i == 0 else 2) * (m.shape[0] * INCHES_PER_PIXEL + gap) + 0.28 for i, m in enumerate(maps)]
    fig_w, fig_h = label_width + max(widths) + 0.2, title_height + sum(heights)
    fig = Figure(figsize=(fig_w, fig_h))
    ax = plots.inch_axes(fig, fig_w, fig_h)
    top = title_height
    for i, (fmap, name) in enumerate(zip(maps, names)):
        size = fmap.shape[0] * INCHES_PER_PIXEL
        ax.text(label_width - 0.15, top + heights[i] / 2,
                f"{name}\n{fmap.shape[0]}×{fmap.shape[1]} pixels" + (f", {fmap.shape[2]} maps" if i else ""),
                ha="right", va="center", fontsize=9.5)
        for c in range(1 if i == 0 else FEATURE_MAPS):
            row, col = divmod(c, columns)
            plots.draw_image(ax, fmap[:, :, c], label_width + col * (size + gap), top + 0.14 + row * (size + gap), size,
                             framed=True, cmap="gray_r" if i == 0 else "viridis", vmin=0 if i == 0 else None)
        top += heights[i]
    fig.suptitle(f"{title}: one digit's first {FEATURE_MAPS} feature maps after each stage, all drawn to one "
                 "pixel scale (brighter = stronger)\neach 2×2 max pooling halves the maps' size and keeps "
                 "every detector's strongest response", fontsize=11, y=1 - 0.1 / fig_h, va="top")
    plots.save_figure(fig, path)

def main(args, run):
    """The CNN of --model, the one part of ``run``: its folder under runs/."""
    train, test = load_data(args.data, args.quick)
    with run:
        run.part("lab CNN" if args.model == "lab" else "improved CNN", train_and_plot, run, args, train, test)
    return 0

if __name__ == "__main__":
    cli.exit_command(main, args, run)
