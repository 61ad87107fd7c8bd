"""Figures shared by the lab scripts: training curves, model diagrams, digit grids."""

import matplotlib

matplotlib.use("Agg")  # files only: works without a display, in CI and over ssh

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyBboxPatch

from mnistlab import results

DPI = 130
TRAIN_COLOR, VAL_COLOR = "#1f77b4", "#d62728"
LAYER_COLORS = {"Dense": "#dbe9f6", "Conv2D": "#fde5cc", "MaxPooling2D": "#d9f0d3",
                "Flatten": "#eeeeee", "Reshape": "#eeeeee", "InputLayer": "#f2f2f2"}


def save_figure(fig, path):
    """Write a PNG in one step (never half-written) and free the figure."""
    results.write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format="png"))
    plt.close(fig)
    return path


def plural(n, word):
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def plot_curves(history, metric, path, title):
    """Training and validation ``metric`` per epoch; accuracy is shown in %."""
    scale, unit, suffix = (100.0, "accuracy (%)", "%") if metric == "accuracy" else (1.0, metric, "")
    train = np.asarray(history[metric]) * scale
    epochs = np.arange(1, len(train) + 1)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(epochs, train, "o-", color=TRAIN_COLOR, label=f"training (final {train[-1]:.2f}{suffix})")
    if f"val_{metric}" in history:
        val = np.asarray(history[f"val_{metric}"]) * scale
        ax.plot(epochs, val, "s-", color=VAL_COLOR, label=f"validation = test set (final {val[-1]:.2f}{suffix})")
    ax.set(title=title, xlabel="epoch", ylabel=unit)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right" if metric == "accuracy" else "upper right")
    return save_figure(fig, path)


def describe_layer(layer):
    """One readable line for a layer: its kind and the settings that matter."""
    kind = type(layer).__name__
    config = layer.get_config()
    text = kind
    if kind == "Dense":
        text = f"Dense {config['units']}"
    elif kind == "Conv2D":
        text = f"Conv2D {config['filters']} × {'×'.join(map(str, config['kernel_size']))}"
    elif kind.endswith("Pooling2D"):
        text = f"{kind} {'×'.join(map(str, config['pool_size']))}"
    elif kind == "Dropout":
        text = f"Dropout {config['rate']:g}"
    activation = config.get("activation")
    if activation and activation != "linear":
        text += f", {activation}"
    regularizer = config.get("kernel_regularizer")
    if regularizer:
        text += f", L2 {regularizer['config'].get('l2', 0):g}"
    return text


def _shape(shape):
    return "(" + ", ".join("batch" if d is None else str(d) for d in shape) + ")"


def plot_model_diagram(model, path, title):
    """The model as stacked boxes: layer, output shape and parameter count, input at the top."""
    rows = [("Input", _shape(model.inputs[0].shape), None, "InputLayer")]
    for layer in model.layers:
        rows.append((describe_layer(layer), _shape(layer.output.shape),
                     layer.count_params(), type(layer).__name__))
    height = 0.78
    fig, ax = plt.subplots(figsize=(6.4, 0.95 * len(rows) + 0.9))
    for i, (name, shape, params, kind) in enumerate(rows):
        y = -i
        ax.add_patch(FancyBboxPatch((0.05, y - height / 2), 0.9, height,
                                    boxstyle="round,pad=0.02,rounding_size=0.08",
                                    facecolor=LAYER_COLORS.get(kind, "#e8e0f5"), edgecolor="#444444"))
        ax.text(0.09, y + 0.13, name, fontsize=11, fontweight="bold", va="center")
        ax.text(0.09, y - 0.17, f"output {shape}", fontsize=9.5, va="center", family="monospace")
        if params is not None:
            ax.text(0.91, y, f"{params:,} params", fontsize=10, va="center", ha="right")
        if i:
            ax.annotate("", xy=(0.5, y + height / 2 + 0.02), xytext=(0.5, y + 1 - height / 2 - 0.02),
                        arrowprops=dict(arrowstyle="-|>", color="#444444"))
    ax.set(xlim=(0, 1), ylim=(-len(rows) + 0.4, 0.6))
    ax.axis("off")
    ax.set_title(f"{title}\n{model.count_params():,} trainable parameters in total", fontsize=12)
    return save_figure(fig, path)
