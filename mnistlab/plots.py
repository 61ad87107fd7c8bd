"""Figures shared by the lab scripts: curves, model diagrams, the confusion matrix, image grids,
runs compared; each a matplotlib Figure of its own (no pyplot, no display) written in one step."""

import shutil
import textwrap

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Rectangle

from mnistlab import records
from mnistlab.data import CLASSES

DPI = 130
TRAIN_COLOR, VAL_COLOR = "#1f77b4", "#d62728"
RUN_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
LAYER_COLORS = {"Dense": "#dbe9f6", "Conv2D": "#fde5cc", "MaxPooling2D": "#d9f0d3",
                "Flatten": "#eeeeee", "Reshape": "#eeeeee", "InputLayer": "#f2f2f2"}
LOSS_NAMES = {"categorical_crossentropy": "categorical cross-entropy", "binary_crossentropy": "binary cross-entropy"}

def save_figure(fig, path):
    """Write a PNG in one step (never half-written)."""
    records.write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format="png"))
    return path

def plural(n, word):
    return f"{n} {word}" if n == 1 else f"{n} {word}s"

def plot_curves(history, metric, path, title, loss_name="loss"):
    """Training and validation ``metric`` per epoch; accuracy is shown in %, the loss by its name."""
    if metric == "accuracy":
        scale, unit, suffix = 100.0, "accuracy (%)", "%"
    else:
        per = "pixel" if "binary" in loss_name else "image"
        scale, unit, suffix = 1.0, f"{LOSS_NAMES.get(loss_name, loss_name)} (loss, nats per {per})", ""
    digits = 2 if metric == "accuracy" else 4
    final = lambda values: f"final {values[-1]:.{digits}f}{suffix}" if np.isfinite(values[-1]) else "not a number"
    train = np.asarray(history[metric], dtype=float) * scale  # a diverged epoch's None is NaN
    epochs = np.arange(1, len(train) + 1)
    ax = Figure(figsize=(7, 4.2)).subplots()
    ax.plot(epochs, train, "o-", color=TRAIN_COLOR, label=f"training ({final(train)})")
    if f"val_{metric}" in history:
        val = np.asarray(history[f"val_{metric}"], dtype=float) * scale
        ax.plot(epochs, val, "s-", color=VAL_COLOR, label=f"validation = test set ({final(val)})")
    diverged = records.diverged_at(history)
    if diverged:
        ax.text(0.5, 0.5, f"the training loss stopped being a number in epoch {diverged}:\n"
                          "the training diverged (try a smaller --lr)", transform=ax.transAxes,
                ha="center", va="center", fontsize=11, bbox=dict(facecolor="white", edgecolor="#b2182b"))
    ax.set(title=title, xlabel="epoch", ylabel=unit, xlim=(0.5, len(train) + 0.5))
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right" if metric == "accuracy" else "upper right")
    return save_figure(ax.figure, path)

def loss_name(model):  # as the record keeps it
    return model.loss if isinstance(model.loss, str) else type(model.loss).__name__

def plot_training(history, model, plot, name, title):
    """A fit's curves (where recorded) and diagram, as ``plot(NAME_accuracy.png)``, ..."""
    loss = loss_name(model)
    for metric, words in (("accuracy", "accuracy"), ("loss", LOSS_NAMES.get(loss, "loss"))):
        if metric in history:
            plot_curves(history, metric, plot(f"{name}_{metric}.png"), f"{title}: {words} per epoch", loss)
    plot_model_diagram(model, plot(f"{name}_model.png"), title)

def print_summary(model):
    """Keras's layer table, at a fixed width in a terminal too narrow for Keras to draw it."""
    model.summary(line_length=None if shutil.get_terminal_size().columns >= 60 else 88)

def describe_layer(layer):
    """One readable line for a layer: its kind and the settings that matter."""
    kind, config = type(layer).__name__, layer.get_config()
    text = kind
    if kind == "Dense":
        text = f"Dense {config['units']}"
    elif kind == "Conv2D":
        text = f"Conv2D {config['filters']} × {'×'.join(map(str, config['kernel_size']))}"
    elif kind.endswith("Pooling2D"):
        text = f"{kind} {'×'.join(map(str, config['pool_size']))}"
    elif kind == "Dropout":
        text = f"Dropout {config['rate']:g}"
    if config.get("activation") not in (None, "linear"):
        text += f", {config['activation']}"
    if config.get("kernel_regularizer"):
        text += f", L2 {config['kernel_regularizer']['config'].get('l2', 0):g}"
    return text

def layer_table(model, prefix=""):
    """The model's layers from input to output, a nested model's named by it, as records keep them."""
    rows = [] if prefix else [{"layer": "Input", "kind": "InputLayer", "activation": None,
                               "output_shape": list(model.inputs[0].shape), "parameters": 0}]
    for layer in model.layers:
        if hasattr(layer, "layers"):
            rows += layer_table(layer, f"{layer.name}: ")
            continue
        activation = layer.get_config().get("activation")
        rows.append({"layer": prefix + describe_layer(layer), "kind": type(layer).__name__,
                     "activation": activation if activation != "linear" else None,
                     "output_shape": list(layer.output.shape), "parameters": layer.count_params()})
    return rows

def plot_model_diagram(model, path, title):
    """The model as stacked boxes: layer, output shape and parameter count, input at the top."""
    rows, height = layer_table(model), 0.78
    ax = Figure(figsize=(6.4, 0.95 * len(rows) + 0.9)).subplots()
    for i, row in enumerate(rows):
        y = -i
        ax.add_patch(FancyBboxPatch((0.05, y - height / 2), 0.9, height, boxstyle="round,pad=0.02,rounding_size=0.08",
                                    facecolor=LAYER_COLORS.get(row["kind"], "#e8e0f5"), edgecolor="#444444"))
        ax.text(0.09, y + 0.13, row["layer"], fontsize=11, fontweight="bold", va="center")
        shape = ", ".join("batch" if d is None else str(d) for d in row["output_shape"])
        ax.text(0.09, y - 0.17, f"output ({shape})", fontsize=9.5, va="center", family="monospace")
        if i:
            ax.text(0.91, y, f"{row['parameters']:,} params", fontsize=10, va="center", ha="right")
            ax.annotate("", xy=(0.5, y + height / 2 + 0.02), xytext=(0.5, y + 1 - height / 2 - 0.02),
                        arrowprops=dict(arrowstyle="-|>", color="#444444"))
    ax.set(xlim=(0, 1), ylim=(-len(rows) + 0.4, 0.6))
    ax.axis("off")
    ax.set_title(f"{title}\n{model.count_params():,} trainable parameters in total", fontsize=12)
    return save_figure(ax.figure, path)

def plot_confusion_matrix(true, predicted, path, title):
    """Counts of (true, predicted) digit pairs, coloured on a log scale so rare errors show; returns them."""
    counts = np.zeros((CLASSES, CLASSES), dtype=int)
    np.add.at(counts, (true, predicted), 1)
    errors = int(counts.sum() - np.trace(counts))
    ax = Figure(figsize=(7.6, 6.6)).subplots()
    image = ax.imshow(np.ma.masked_equal(counts, 0), cmap="Blues", norm=LogNorm(vmin=1, vmax=max(counts.max(), 2)))
    for (i, j), count in np.ndenumerate(counts):
        if count:
            color = "white" if count > counts.max() ** 0.6 else ("#222222" if i == j else "#b2182b")
            ax.text(j, i, str(count), ha="center", va="center", fontsize=9, color=color)
    ax.set(xticks=range(CLASSES), yticks=range(CLASSES), xlabel="predicted digit", ylabel="true digit",
           title=f"{title}\n{errors} of {counts.sum():,} test images misclassified "
                 f"({100 * errors / counts.sum():.2f}%)")
    ax.figure.colorbar(image, ax=ax, label="test images (log scale)", shrink=0.85)
    save_figure(ax.figure, path)
    return counts

def inch_axes(fig, width, height):
    """A frameless axes over ``fig``'s bottom ``width`` x ``height`` inches, in inches from its top left."""
    fig_w, fig_h = fig.get_size_inches()
    ax = fig.add_axes((0, 0, width / fig_w, height / fig_h))
    ax.set_axis_off()
    ax.set(xlim=(0, width), ylim=(height, 0))
    return ax

def draw_image(ax, image, x, y, size, *, framed=False, caption=None, fontsize=8.5, **imshow):
    """``image`` as a ``size``-inch square at (``x``, ``y``) of an ``inch_axes``, captioned above."""
    shown = ax.imshow(image, extent=(x, x + size, y + size, y), **imshow)
    if framed:
        ax.add_patch(Rectangle((x, y), size, size, fill=False, linewidth=0.8, edgecolor="black"))
    if caption is not None:
        ax.text(x + size / 2, y - 0.06, caption, ha="center", va="bottom", fontsize=fontsize)
    return shown

def image_grid(images, columns, *, size, gap, band, captions=(), names=(), left=0.0, right=0.0, top=0.5, **draw):
    """A figure of ``images`` in rows of ``columns``, each ``size`` inches square, ``gap`` apart, under a
    ``band`` for its caption, ``names`` [(text, colour)] of the rows left; with its axes, last image."""
    rows = max(1, -(-len(images) // columns))
    width, height = left + columns * (size + gap), rows * (size + band)
    fig = Figure(figsize=(width + right, height + top))
    ax, shown = inch_axes(fig, width, height), None
    for i, image in enumerate(images):
        row, col = divmod(i, columns)
        shown = draw_image(ax, image, left + col * (size + gap) + gap / 2, row * (size + band) + band, size,
                           caption=captions[i] if captions else None, **draw)
    for row, (text, color) in enumerate(names):
        ax.text(left - 0.08, row * (size + band) + band + size / 2, text, ha="right", va="center", fontsize=10, color=color)
    return fig, ax, shown

def plot_digit_grid(images, captions, path, title, columns=10):
    """Digits in a grid, each under its short caption; ``images`` in [0, 1]."""
    lines = max((str(caption).count("\n") + 1 for caption in captions), default=1)
    fig, _, _ = image_grid([np.asarray(image).reshape(28, 28) for image in images], columns, size=1.1, gap=0.15,
                           band=0.17 * lines + 0.12, captions=captions, cmap="gray_r", vmin=0, vmax=1)
    fig.suptitle(title, fontsize=12)
    return save_figure(fig, path)

def run_style(current):
    """The run just made stands out; the runs it is compared with stay readable behind it."""
    return dict(linewidth=2.8, alpha=1.0, zorder=3) if current else dict(linewidth=1.4, alpha=0.75, zorder=2)

def plot_runs(curves, metric, path, title, legend_title):
    """``curves`` [(label, per-epoch values, is_current)], identical ones (same seed) as one line."""
    accuracy = "accuracy" in metric
    groups = {}  # identical curves together, in the order of their first run
    for label, values, current in curves:
        group = groups.setdefault(tuple(values), {"labels": [], "current": False})
        group["labels"].append(label)
        group["current"] |= current
    ax = Figure(figsize=(8, 4.8)).subplots()
    for (values, group), color in zip(groups.items(), RUN_COLORS):
        values = np.asarray(values, dtype=float) * (100 if accuracy else 1)
        final = f"{values[-1]:.2f}%" if accuracy else f"{values[-1]:.4f}"
        labels = group["labels"]
        label = (labels[0] if len(labels) == 1
                 else textwrap.fill(f"{len(labels)} identical runs: " + "; ".join(labels), 70))
        ax.plot(np.arange(1, len(values) + 1), values, "o-", markersize=3.5, color=color,
                label=f"{label}{' (this run)' if group['current'] and len(groups) > 1 else ''}: final {final}",
                **run_style(group["current"]))
    ax.set(title=title, xlabel="epoch", ylabel="validation accuracy (%)" if accuracy else f"validation {metric[4:]}")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    # Below the axes: a legend of many runs, or of long labels, hides no curve there.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=8.5, title=legend_title, title_fontsize=8.5)
    return save_figure(ax.figure, path)
