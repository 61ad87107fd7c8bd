"""The lab report, written from a folder's own records: one section per question of the
handout, in its order, each answered with tables, figures and sentences computed from the
records in ``results/`` (and the figures in ``plots/``). Nothing in it is copied from an earlier
run: rerun with other flags, and the report describes that run, saying where it differs from
the lab's settings.

    python -m mnistlab.report [--out DIR]     # writes DIR/REPORT.md
"""

import math
import os
import re
import sys

from mnistlab import cli, data, lab, l2_study, results, runs
from mnistlab.errors import LabError

PROG = "python -m mnistlab.report"
SCRIPTS = {"mlp_mnist": "jax", "cnn_mnist": "tensorflow", "denoise_autoencoder": "jax"}  # and their default backends
# Flags `make lab` and `make improved` pass to choose what runs and what is kept, not how it trains.
LAB_RUN_FLAGS = ("save-model", "study", "per-level", "fixed-noise", "levels", "model")
READABLE = 0.90  # 4B: the accuracy below which we call noisy digits hard to read
HELPS_BY = 0.01  # 4B-4C: denoising helps where it gains more than this and than twice the draws' spread
HINTON_EXPERIMENT = os.path.join("experiments", "hinton")  # the README's pre-declared arms


# Reading the records


def read_records(out):
    """Each record in OUT/results as a dict ({} where the run did not make it), and each
    script's published run.json."""
    read = lambda name: runs.read_record(os.path.join(out, "results", f"{name}.json"))
    records = {name: read(name) for name in ("mlp_mnist", l2_study.NAME, "cnn_mnist", "cnn_improved",
                                            "denoise_autoencoder")}
    records["runs"] = {name: read(f"{name}_run") for name in (*SCRIPTS, "cnn_improved")}
    return records


def points(difference):
    return f"{100 * difference:+.2f} points"


def caveat(record, script):
    """What sets a record's numbers apart from the lab's: a quick subset, other flags, another
    backend; "" for a record made at the lab's settings."""
    config = record.get("config", {})
    notes = []
    if config.get("quick"):
        notes.append("quick subset")
    flags = [flag for flag in config.get("changed", [])
             if flag != "quick" and flag.split(" ")[0] not in LAB_RUN_FLAGS]
    if flags:
        notes.append("flags: " + ", ".join(flags))
    backend = record.get("environment", {}).get("backend")
    if backend and backend != SCRIPTS[script]:
        notes.append(f"backend {backend}")
    return f" *({'; '.join(notes)})*" if notes else ""


def figure(out, name, caption):
    """A figure of plots/ with its caption, or nothing if the run did not draw it."""
    if not os.path.isfile(os.path.join(out, "plots", name)):
        return []
    return [f"![{caption}](plots/{name})", "", f"*{caption}*", ""]


def table(header, rows):
    """A Markdown table; a header starting with # is a column of numbers, aligned right."""
    lines = ["| " + " | ".join(h.lstrip("#") for h in header) + " |",
             "|" + "|".join("---:" if h.startswith("#") else "---" for h in header) + "|"]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows] + [""]


def levels_text(levels):
    return ", ".join(f"{level:g}" for level in levels)


def missing(command):
    return [f"*Not in this folder's records yet: `{command}` makes them.*", ""]


def opening(records, name, field, command, *words):
    """A section's heading, and record ``name`` if it holds ``field`` (any record, for ""); else
    None, and a line naming the command that makes it."""
    record = records[name]
    if not record or (field and field not in record):
        return heading(*words) + missing(command), None
    return heading(*words), record


def heading(number, words, quote):
    return [f"## {number}. {words}", "", f"> The handout: \"{quote}\"", ""]


# The sections, in the handout's order


def preprocessing(records, out):
    lines = heading(1, "Preprocessing the digits", "Explain the data pre-processing")
    mlp = records["mlp_mnist"]
    sizes = mlp.get("examples")
    count = (f"{sizes['train']:,} training and {sizes['test']:,} test digits" if sizes
             else "60,000 training and 10,000 test digits")
    lines += [
        f"`keras.datasets.mnist.load_data()` gives {count}{caveat(mlp, 'mlp_mnist') if mlp else ''}: "
        "28×28 grey-level images as 8-bit integers from 0 (paper) to 255 (ink), and their labels 0-9. "
        "Each script then prepares them the same way (`mnistlab/data.py`):",
        "",
        "- `astype('float32')`: the networks compute in 32-bit floats; integers would be converted at "
        "every step, and 64-bit floats would double the memory for no gain in accuracy.",
        "- `/ 255`: pixels in [0, 1]. Inputs of order 1 keep the first layer's sums, and so the "
        "gradients, in the range for which the default weight initialisations and learning rates "
        "are made; raw values up to 255 would saturate or blow up the first steps.",
        "- `to_categorical(y, 10)`: each label becomes a one-hot vector of 10 (a 3 is "
        "`[0,0,0,1,0,0,0,0,0,0]`), the form of the softmax output and of the target that "
        "categorical cross-entropy compares it with.",
        "- The layout each model needs: the MLP flattens each 28×28 image into 784 numbers (its "
        "`Flatten` layer), the CNN adds a channel axis (28×28×1), the autoencoder reads 784-vectors.",
        "",
        "The test set is also the validation set, as in the handout: the validation numbers below "
        "are test numbers, and choosing among runs by them is a choice made on the test set.", ""]
    return lines


def layers_table(record):
    """The table of a record's layers (layer, output shape, parameters) and their total."""
    rows = [(row["layer"], _shape(row["output_shape"]), f"{row['parameters']:,}") for row in record["layers"]]
    return table(["layer", "output shape", "#parameters"], rows + [("**total**", "", f"**{record['parameters']:,}**")])


def _shape(shape):
    return "×".join(str(d) for d in shape[1:])


def mlp_layers(records, out):
    lines, mlp = opening(records, "mlp_mnist", "layers", "python mlp_mnist.py",
                         "2A", "The MLP's layers, sizes and parameters",
                         "How many layers does the network in the notebook have?")
    if mlp is None:
        return lines
    dense = [row for row in mlp["layers"] if row["kind"] == "Dense"]
    sizes = [math.prod(mlp["layers"][0]["output_shape"][1:])] + [row["output_shape"][-1] for row in dense]
    formula = ", ".join(f"{a}×{b} + {b} = {a * b + b:,}" for a, b in zip(sizes, sizes[1:]))
    hidden = dense[:-1]
    lines += layers_table(mlp)
    lines += [
        f"The network{caveat(mlp, 'mlp_mnist')} has {len(dense)} layers with weights: "
        f"{len(hidden)} hidden `Dense` layers of {' and '.join(str(r['output_shape'][-1]) for r in hidden)} "
        f"neurons and an output layer of {dense[-1]['output_shape'][-1]}; `Flatten` only reshapes. "
        f"A dense layer of n inputs and m neurons has n×m weights and m biases: {formula}, "
        f"{mlp['parameters']:,} parameters in total.",
        "",
        f"- **Input {sizes[0]}**: one number per pixel of a 28×28 image; a dense layer sees the "
        "image as a flat vector.",
        f"- **Output {sizes[-1]}**: one neuron per digit class, 0 to 9.",
        "- **ReLU in the hidden layers** (max(0, x)): cheap, and its gradient is 1 wherever a unit "
        "is active, so the error signal reaches the first layer without shrinking, unlike sigmoid "
        "or tanh, which saturate. Stacked, the piecewise-linear units can bend the input space as "
        "much as the classes need.",
        "- **Softmax at the output** (e^{z_k} / Σ_j e^{z_j}): ten positive numbers that sum to 1, a "
        "probability for each digit, which is what the cross-entropy loss needs.", ""]
    return lines + figure(out, "mlp_mnist_model.png", "The lab MLP as this run built it: each layer's output shape "
                                                      "and parameter count.")


def mlp_loss(records, out):
    lines, mlp = opening(records, "mlp_mnist", "history", "python mlp_mnist.py",
                         "2B", "The loss: categorical cross-entropy", "What loss-function is used to train the network?")
    if mlp is None:
        return lines
    loss, first = mlp["history"]["loss"][-1], mlp["history"]["loss"][0]
    lines += [
        "The MLP minimises the categorical cross-entropy (`loss='categorical_crossentropy'`), averaged "
        "over the N images of a batch:",
        "",
        "$$L = -\\frac{1}{N} \\sum_{n=1}^{N} \\sum_{k=0}^{9} y_{nk} \\log p_{nk}$$",
        "",
        "where y_nk is 1 if image n is digit k (the one-hot label) and 0 otherwise, and p_nk is the "
        "softmax probability the network gives to digit k. With one-hot labels only the true class "
        "counts: the loss is the mean of −log(probability given to the right digit). It is 0 when "
        "the network is certain and right, log 10 ≈ 2.303 when it spreads its belief evenly over the "
        "ten digits, and grows without bound when it is certain and wrong.",
        "",
        "**Why it fits**: it is the negative log-likelihood of the labels under the network's "
        "predicted distribution, so minimising it is maximum-likelihood estimation for a 10-class "
        "problem; with softmax its gradient with respect to the output sums is simply p − y, which "
        "stays large while the prediction is wrong (a squared error on probabilities flattens out "
        "exactly when the network is confidently wrong). Accuracy, the number we report, has no "
        "useful gradient: it changes only when an image crosses a decision boundary.",
        "",
        f"**In this run**{caveat(mlp, 'mlp_mnist')}: the training loss fell from {first:.3f} in the first "
        f"epoch to {loss:.4f} in the last; the test loss is {mlp['test_loss']:.4f}, so the network gives "
        f"the right digit a probability of {math.exp(-mlp['test_loss']):.1%} on average (geometric mean "
        "over the test images, e^−loss).", ""]
    return lines + figure(out, "mlp_mnist_loss.png", "The lab MLP's cross-entropy per epoch, on the training "
                                                     "and the test set.")


def mlp_curves(records, out):
    lines, mlp = opening(records, "mlp_mnist", "history", "python mlp_mnist.py",
                         "2C", "The MLP's accuracy per epoch",
                         "Train the network for 10 epochs and plot the training and validation accuracy for each epoch.")
    if mlp is None:
        return lines
    train, val = mlp["history"]["accuracy"], mlp["history"]["val_accuracy"]
    epochs = len(val)
    reached = next((i for i, a in enumerate(val, 1) if a is not None and a >= 0.97), None)
    at_ten = (f" After the handout's 10 epochs it stood at {results.percent(val[9])}." if epochs > 10 else "")
    lines += [
        f"This run trained for {epochs} epochs{caveat(mlp, 'mlp_mnist')}"
        + (" (the handout says 10; at 10 epochs whether the MLP reaches 97% depends on the seed, so the "
           f"project trains {lab.MLP_EPOCHS} by default: see the README)." if epochs != 10 else ", as the handout asks.")
        + f"{at_ten} Validation accuracy {'first reached 97% in epoch ' + str(reached) if reached else 'never reached 97%'} "
        f"and ended at {results.percent(val[-1])}, the test accuracy of the final model; training accuracy ended at "
        f"{results.percent(train[-1])}, {abs(100 * (train[-1] - val[-1])):.2f} points "
        f"{'above' if train[-1] >= val[-1] else 'below'} it. "
        + ("A training accuracy this far above the validation accuracy shows the network starting to "
           "fit its training digits more than digits in general." if train[-1] - val[-1] > 0.01 else
           "Training accuracy is the lower one: it is averaged over the epoch while the weights still "
           "improve, validation accuracy is measured after it." if val[-1] - train[-1] > 0.01 else
           "The two curves stay close: the small network is not yet overfitting."), ""]
    return lines + figure(out, "mlp_mnist_accuracy.png", "The lab MLP's training and validation (test-set) "
                                                         "accuracy per epoch.")


POOLED = re.compile(r"([\d.]+)% ± ([\d.]+)% \((\d+)\)")  # a study table's "all trials" cell


def read_experiment(out):
    """The README's Hinton experiment, when its comparison table is present: the table's text
    and its arms, [(flags, pooled mean %, pooled std %, trials)]; ("", []) otherwise."""
    path = os.path.join(out, HINTON_EXPERIMENT, "results", "mlp_l2_study_runs.md")
    if not os.path.isfile(path):
        return "", []
    with open(path) as f:
        text = f.read()
    arms = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        pooled = next((match for cell in cells if (match := POOLED.fullmatch(cell))), None)
        if pooled:
            arms.append((cells[1], float(pooled[1]), float(pooled[2]), int(pooled[3])))
    return text, arms


def mlp_study(records, out):
    lines, study = opening(records, l2_study.NAME, "rows", "python mlp_mnist.py --study", "2D",
                           "The 500-300 MLP with L2 weight decay, against Hinton's 98.47%",
                           "How close do you get to Hintons result?")
    if study is None:
        return lines
    mlp = records["mlp_mnist"]
    settings, rows = study["settings"], study["rows"]
    note = caveat(mlp, "mlp_mnist")
    test_count = mlp.get("examples", {}).get("test", 10_000)
    lines += [f"The study{note}: {l2_study.describe_settings(settings)}, batch {settings['batch_size']}; "
              f"{len(rows)} L2 factors × {rows[0]['replicates']} replicates, each replicate starting from its "
              "own initial weights (the same ones at every factor). The L2 penalty λ·Σw² is added to the loss "
              "for the kernels of the hidden layers, pulling weights toward 0 unless the data pays for them.", ""]
    lines += l2_study.format_table(rows).splitlines() + [""]
    lines += figure(out, "mlp_l2_study.png", "Final validation accuracy against the L2 factor: each replicate, "
                                              "mean ± standard deviation, and the two references.")
    best = l2_study.best_row(rows)
    if best is None:
        return lines + ["Every trial diverged: there is no accuracy to compare; rerun with a smaller `--lr`.", ""]
    trials = l2_study.all_trials(rows)
    top = max(trials)
    gap = lab.HINTON - best["mean"]
    means = [r["mean"] for r in rows if r["mean"] is not None]
    spread = max(means) - min(means)
    typical_std = sum(r["std"] for r in rows if r["std"] is not None) / len(means)
    within = gap <= best["std"] if best["std"] else gap <= 0
    lines += [
        f"**Best validation accuracy**: the best single trial reached {results.percent(top)}; the best factor, "
        f"L2 {best['l2']:g}, averaged {results.percent(best['mean'])} ± {results.percent(best['std'])} over its "
        f"{best['replicates'] - best.get('diverged', 0)} replicates{note}, "
        + ("equal to the lab report's best, " if round(best["mean"], 4) == lab.LAB_REPORT_MLP else
           f"{abs(100 * (best['mean'] - lab.LAB_REPORT_MLP)):.2f} points {'above' if best['mean'] > lab.LAB_REPORT_MLP else 'below'} "
           "the lab report's best, ") + f"{results.percent(lab.LAB_REPORT_MLP)}.",
        "",
        f"**How close to Hinton**: {abs(100 * gap):.2f} points {'below' if gap > 0 else 'above'} his "
        f"{results.percent(lab.HINTON)}, that is {abs(gap) * test_count:.0f} of the {test_count:,} test digits; "
        + (f"the gap is {abs(gap) / best['std']:.1f} times the spread of that factor's replicates, "
           if best["std"] else "")
        + ("so it lies within the replicates' own variation." if within else
           "so it is not explained by the replicates' own variation.")
        + f" Across the factors the means differ by {100 * spread:.2f} points, against a typical "
        f"spread of {100 * typical_std:.2f} points between replicates of one factor: "
        + ("within this range the choice of factor matters less than the luck of the initial weights."
           if spread < 2 * typical_std else "the factor matters more than the luck of the initial weights."),
        ""]
    experiment, arms = read_experiment(out)
    if arms:
        best_arm = max(arms, key=lambda arm: arm[1])
        shared = set.intersection(*(set(arm[0].split(", ")) for arm in arms))
        changed = ", ".join(flag for flag in best_arm[0].split(", ") if flag not in shared) or "no other flag"
        lines += [
            f"**Tested, not guessed** (the README's experiment, `make hinton`: {len(arms)} pre-declared arms at "
            "two factors, each changing what Hinton's training may have done differently): the best arm, "
            f"*{changed}*, pooled {best_arm[1]:.2f}% ± {best_arm[2]:.2f}% over {best_arm[3]} trials, "
            f"{lab.HINTON * 100 - best_arm[1]:.2f} points short of {results.percent(lab.HINTON)}; "
            + ("no arm reached it." if all(arm[1] < 100 * lab.HINTON for arm in arms) else "it reached it.")
            + " Its table:", ""]
        lines += experiment.strip().splitlines() + [""]
        figure_path = f"{HINTON_EXPERIMENT}/plots/mlp_l2_study_runs.png"
        if os.path.isfile(os.path.join(out, figure_path)):
            lines += [f"![the arms compared]({figure_path})", ""]
    lines += [
        "**What may explain a gap** (what Hinton's number does not say): how his validation set was "
        "drawn and whether his 98.47% is one run or the best of many; his preprocessing (centring, "
        "scaling, any augmentation); the learning-rate schedule, momentum and number of epochs; the "
        "initialisation; whether weight decay covered all layers and biases; early stopping. Here the "
        f"replicates of one factor differ by {100 * typical_std:.2f} points (standard deviation) by their "
        "initial weights alone, so a best of many runs sits above a typical one.", ""]
    return lines


NEW_LAYERS = {
    "RandomRotation": "turns each training digit by a random small angle; with the two below, new but "
                      "plausible digits every epoch (only while training: at test time they pass images through)",
    "RandomTranslation": "shifts each training digit by a few pixels",
    "RandomZoom": "zooms each training digit in or out a little",
    "BatchNormalization": "rescales each channel to zero mean and unit variance over the batch, then by a "
                          "learned scale and shift: steadier training at higher learning rates",
    "Activation": "the ReLU, as a layer of its own so that it comes after the batch norm",
    "Dropout": "sets that fraction of its inputs to 0 at each training step (none at test time), so that "
               "no unit can rely on another",
}


def cnn_model(records, out):
    lines, cnn = opening(records, "cnn_mnist", "layers", "python cnn_mnist.py --save-model", "3A",
                         "A convolutional network, and how good it gets",
                         "Design a model that makes use of at least one convolutional layer")
    if cnn is None:
        return lines
    mlp = records["mlp_mnist"]
    note = caveat(cnn, "cnn_mnist")
    accuracy, test_count = cnn["test_accuracy"], cnn.get("examples", {}).get("test", 10_000)
    sizes = [f"{row['output_shape'][1]}×{row['output_shape'][2]}" for row in cnn["layers"]
             if row["kind"] in ("InputLayer", "Conv2D", "MaxPooling2D")]
    lines += layers_table(cnn)
    config = cnn["config"]
    lines += [
        f"The lab CNN{note} reached **{results.percent(accuracy)}** test accuracy "
        f"({'above' if accuracy >= 0.99 else 'below'} the handout's 99%; the lab report's CNN: "
        f"{results.percent(lab.LAB_REPORT_CNN)}), trained {config['epochs']} epochs with {config['optimizer'].capitalize()} "
        f"at {config['lr']:g}" + (", the rate cosine-decayed to 0" if config.get("schedule") == "cosine" else "")
        + f", batch {config['batch_size']}. It misclassifies {round((1 - accuracy) * test_count)} of the "
        f"{test_count:,} test digits"
        + (f", against the lab MLP's {round((1 - mlp['test_accuracy']) * test_count)} with "
           f"{mlp['parameters']:,} parameters to its {cnn['parameters']:,}" if mlp.get("test_accuracy") else "")
        + ".", ""]
    per_class = cnn.get("per_class_accuracy")
    if per_class:
        worst = min(range(10), key=lambda d: per_class[d])
        best = max(range(10), key=lambda d: per_class[d])
        lines += [f"Per digit, it is weakest on {worst}s ({results.percent(per_class[worst])} right) and strongest on "
                  f"{best}s ({results.percent(per_class[best])}); the confusion matrix shows which digits it takes for which.", ""]
    lines += [
        "**The layers not used before**:",
        "",
        "- `Conv2D` (filters, kernel size): slides each of its small learned filters over the image and "
        "writes, at every position, how strongly the patch under it matches: one feature map per "
        "filter. The first layer's 5×5 filters learn edge and stroke detectors; the second combines "
        "them into parts of digits.",
        f"- `MaxPooling2D` 2×2: keeps the largest value of each 2×2 block, halving each map's height and "
        f"width. In this run the maps go {' → '.join(sizes)} pixels (each unpadded 5×5 convolution trims "
        "4, each pooling halves): a detector that fires anywhere in a block still counts, so a stroke "
        "shifted by a pixel changes little, and the next layer sees a wider part of the digit for the "
        "same filter size.",
        "- `Flatten`, `Dense` with softmax: as in the MLP, on the last maps instead of the pixels.", ""]
    for name, caption in (("cnn_mnist_model.png", "The lab CNN as this run built it."),
                          ("cnn_mnist_accuracy.png", "The lab CNN's accuracy per epoch."),
                          ("cnn_mnist_feature_maps.png", "One test digit's feature maps after each convolution "
                                                         "and each pooling, all drawn to one pixel scale."),
                          ("cnn_mnist_filters.png", "The first convolution's learned filters."),
                          ("cnn_mnist_confusion.png", "Which digits the CNN takes for which, on the test set."),
                          ("cnn_mnist_misclassified.png", "The test digits it got wrong with the most confidence.")):
        lines += figure(out, name, caption)
    improved = records["cnn_improved"]
    if improved.get("test_accuracy") is not None:
        lines += [
            f"**Beyond the lab** (`make improved`){caveat(improved, 'cnn_mnist')}: the improved CNN reached "
            f"{results.percent(improved['test_accuracy'])} with {improved['parameters']:,} parameters, "
            f"{round((1 - improved['test_accuracy']) * test_count)} errors. The layers it adds:", ""]
        lab_kinds = {row["kind"] for row in cnn["layers"]}
        for row in improved.get("layers", []):
            if row["kind"] in NEW_LAYERS and row["kind"] not in lab_kinds:
                lab_kinds.add(row["kind"])
                lines.append(f"- `{row['layer']}`: {NEW_LAYERS[row['kind']]}")
        lines.append("")
        lines += figure(out, "cnn_improved_feature_maps.png", "The improved CNN's feature maps, after each "
                                                              "convolution's batch norm and ReLU.")
    return lines


def cnn_versus_dense(records, out):
    lines = heading("3B", "Why convolutions suit images better than dense layers",
                    "Discuss the differences and potential benefits of using convolutional layers over fully "
                    "connected ones for the particular application?")
    cnn, mlp = records["cnn_mnist"], records["mlp_mnist"]
    lines += [
        "- **Locality**: a convolution's unit looks at a small patch (5×5 here); a dense unit looks at "
        "all 784 pixels at once and must learn from data that far-apart pixels rarely matter together.",
        "- **Weight sharing**: the same filter is applied at every position, so a stroke detector learned "
        "in one corner works everywhere, and the parameter count does not grow with the image.",
        "- **Translation**: shifting the digit shifts the feature maps (equivariance), and pooling "
        "then absorbs small shifts (approximate invariance); a dense layer sees a shifted digit as a new "
        "input and must learn it again.",
        "- **Structure**: the 2D neighbourhood of pixels is kept through the layers, where a dense "
        "layer starts by flattening it away.", ""]
    first = next((row for row in cnn.get("layers", []) if row["kind"] == "Conv2D"), None)
    if first and mlp.get("test_accuracy") is not None:
        outputs = math.prod(first["output_shape"][1:])
        dense_equivalent = 784 * outputs + outputs
        test_count = cnn.get("examples", {}).get("test", 10_000)
        errors = [round((1 - r["test_accuracy"]) * test_count) for r in (mlp, cnn)]
        lines += [
            f"**In numbers, from this run's records**: the first convolution computes {outputs:,} outputs "
            f"({_shape(first['output_shape'])}) with {first['parameters']:,} parameters; a dense layer "
            f"computing as many outputs from the 784 pixels would need {dense_equivalent:,}. The whole CNN "
            f"has {cnn['parameters']:,} parameters to the MLP's {mlp['parameters']:,} and makes "
            f"{errors[1]} errors on the test set to the MLP's {errors[0]}"
            + (f", {errors[0] / max(errors[1], 1):.1f} times fewer" if errors[1] < errors[0] else "")
            + f"{caveat(cnn, 'cnn_mnist') or caveat(mlp, 'mlp_mnist')}. The price: a convolution does "
            "many more multiplications per parameter (each filter is applied at every position), so "
            "an epoch costs more computation than the MLP's.", ""]
    return lines


def autoencoder(records, out):
    lines, dae = opening(records, "denoise_autoencoder", "layers", "python denoise_autoencoder.py",
                         "4A", "What the denoising autoencoder does, and its loss", "Explain what the model does")
    if dae is None:
        return lines
    config = dae["config"]
    code = [row for row in dae["layers"] if row["layer"].startswith("encoder")][-1]["output_shape"][-1]
    noise = (f"exactly {config['noise']:g}" if config.get("fixed_noise")
             else f"drawn for each image from a band of mean {config['noise']:g}, fresh every epoch")
    lines += layers_table(dae)
    lines += [
        f"**The data**{caveat(dae, 'denoise_autoencoder')}: each training image is flattened to 784 pixels "
        f"in [0, 1]; its input is a noisy copy (`salt_and_pepper`: a fraction of the pixels, here "
        f"{noise}, replaced by black or white), its target the clean image itself. "
        f"**The model**: an encoder squeezes the 784 pixels through 128 units into a code of {code} "
        "numbers; a decoder expands the code back to 784 pixels, each through a sigmoid, so each output "
        "is a value in (0, 1). As the code is smaller than the image and noise is random, the cheapest "
        "way to reproduce clean digits is to encode what digits look like and drop the rest: the "
        "network learns to denoise.",
        "",
        "**The loss**: binary cross-entropy per pixel, between the clean target x and the output x̂:",
        "",
        "$$L = -\\frac{1}{784} \\sum_{i=1}^{784} \\left[ x_i \\log \\hat{x}_i + (1 - x_i) \\log (1 - \\hat{x}_i) \\right]$$",
        "",
        "It treats each output pixel as the probability of ink and scores it against the clean pixel: "
        "the only way to lower it is to predict the clean image, not the noisy input. Its role is what "
        "makes this a denoiser rather than a copier.",
        "",
        f"**Trained** with the given settings: Adam at {config['lr']:g}, {config['epochs']} epochs, batch "
        f"{config['batch_size']}. The training loss ended at {dae['history']['loss'][-1]:.4f} and the loss "
        f"on noisy test digits at {dae['history']['val_loss'][-1]:.4f}.", ""]
    lines += figure(out, "denoise_autoencoder_model.png", "The autoencoder: encoder, then decoder, with each "
                                                          "layer's output shape.")
    return lines + figure(out, "denoise_autoencoder_loss.png", "Its binary cross-entropy per epoch.")


def by_level(dae):
    """For each classifier: [(level, noisy, noisy std, denoised, denoised std)]."""
    return {c["name"]: list(zip(dae["noise_levels"], c["accuracy_noisy"], c["accuracy_noisy_std"],
                                c["accuracy_denoised"], c["accuracy_denoised_std"])) for c in dae["classifiers"]}


def helps(noisy, noisy_std, denoised, denoised_std):
    return denoised - noisy > max(HELPS_BY, 2 * max(noisy_std, denoised_std))


def thresholds(levels):
    """From one classifier's curves: the first level where noisy digits fall below READABLE, the
    highest level up to which denoised digits stay at READABLE, and the first level, past one
    where denoising helped, where it no longer does (None where there is none)."""
    hard = next((level for level, noisy, *_ in levels if noisy < READABLE), None)
    kept = None
    for level, _, _, denoised, _ in levels:
        if denoised < READABLE:
            break
        kept = level
    helped, stops = False, None
    for level, *scores in levels:
        if helps(*scores):
            helped = True
        elif helped:
            stops = level
            break
    return hard, kept, stops, helped


def noise_levels(records, out):
    lines, dae = opening(records, "denoise_autoencoder", "reconstruction", "python denoise_autoencoder.py",
                         "4B", "Noisy and denoised digits from noise 0 to 1",
                         "At what noise level does it become difficult to identify the digits for you?")
    if dae is None:
        return lines
    lines += figure(out, "denoise_examples.png", "The same ten test digits clean, noisy and denoised at "
                                                 "each noise level.")
    lines += table(["noise", "#cross-entropy, noisy", "#cross-entropy, denoised", "#PSNR noisy (dB)",
                    "#PSNR denoised (dB)"],
                   [(f"{r['noise_level']:g}", f"{r['bce_noisy']:.3f}", f"{r['bce_denoised']:.3f}",
                     "–" if r["psnr_noisy_db"] is None else f"{r['psnr_noisy_db']:.1f}",
                     "–" if r["psnr_denoised_db"] is None else f"{r['psnr_denoised_db']:.1f}")
                    for r in dae["reconstruction"]])
    if "classifiers" not in dae:
        return lines
    name, levels = next(iter(by_level(dae).items()))
    hard, kept, stops, helped = thresholds(levels)
    lines += [
        f"**Where digits get hard to read.** Reading a figure by eye is a judgement; as a measurable "
        f"stand-in we take the {name}, which reads clean digits at "
        f"{results.percent(dae['classifiers'][0]['accuracy_clean'])}, and call noisy digits hard to read from the first "
        f"level where its accuracy on them falls below {READABLE:.0%}: "
        + (f"**noise {hard:g}** in this run{caveat(dae, 'denoise_autoencoder')} "
           f"({results.percent(next(noisy for level, noisy, *_ in levels if level == hard))})." if hard is not None
           else "no level tried in this run.") + " Compare with the noisy rows of the figure.",
        "",
        f"**Where denoising stops working.** Our rule: denoising helps at a level when the {name}'s "
        f"accuracy on denoised digits beats its accuracy on the noisy ones by more than {100 * HELPS_BY:g} "
        "percentage point "
        "and by more than twice the spread between noise draws. "
        + ("Denoised digits stay readable (at least " + f"{READABLE:.0%}) up to **noise {kept:g}**" if kept is not None
           else f"Denoised digits fall below {READABLE:.0%} at every level")
        + (f"; denoising helps from noise {levels_text([l for l, *sc in levels if helps(*sc)][:1])} and **stops "
           f"helping at noise {stops:g}**" if stops is not None
           else "; denoising helps up to the highest level tried" if helped else "; denoising never helps here")
        + ". " + at_lab_report_level(levels) + closer(dae["reconstruction"]), ""]
    return lines


def at_lab_report_level(levels):
    """This run's numbers at 0.6, where the lab report judged that denoising stops holding up."""
    at = next(((noisy, denoised) for level, noisy, _, denoised, _ in levels if level == 0.6), None)
    if at is None:
        return "(The lab report judged that denoising holds up to about 0.6.) "
    return (f"The lab report judged that denoising holds up to about 0.6; here, at 0.6, denoised digits are "
            f"read at {results.percent(at[1])} against {results.percent(at[0])} noisy. ")


def closer(reconstruction):
    """Where the denoised images are closer to the clean ones than the noisy images are."""
    better = [r["noise_level"] for r in reconstruction if r["bce_denoised"] < r["bce_noisy"]]
    if not better:
        return "By cross-entropy against the clean digits, the denoised images are never closer to them than the noisy ones."
    return (f"By cross-entropy against the clean digits (and by PSNR, the peak signal-to-noise ratio: "
            f"higher is closer), the denoised images are closer to them than the noisy ones at noise "
            f"{levels_text(better)}"
            + (f", and further from them at {levels_text(r['noise_level'] for r in reconstruction if r['noise_level'] not in better)}"
               if len(better) < len(reconstruction) else "") + ".")


def accuracy_against_noise(records, out):
    lines, dae = opening(records, "denoise_autoencoder", "classifiers",
                         "python denoise_autoencoder.py --per-level --fixed-noise --levels 0 0.2 0.4 0.6 0.8 1",
                         "4C", "Does denoising help the classifiers?",
                         "Test whether denoising improves the classification with the best performing model you "
                         "obtained in questions 2 or 3.")
    if dae is None:
        return lines
    curves = by_level(dae)
    names = list(curves)
    lines += [f"Scored{caveat(dae, 'denoise_autoencoder')} with {' and '.join(names)} ({names[0]}: the best "
              f"model of questions 2-3 this folder saved), on {dae['study_mode']}; each point the mean over "
              f"{dae['draws']} noise draws, the correct class taken as the most likely one (accuracy = "
              "true-positive rate).", ""]
    lines += figure(out, "denoise_accuracy.png", "Accuracy on noisy (dashed) and denoised (solid) test digits "
                                                 "against the noise level, and on clean digits (dotted).")
    header = ["noise"] + [f"#{name}, {kind}" for name in names for kind in ("noisy", "denoised")]
    rows = []
    for i, level in enumerate(dae["noise_levels"]):
        row = [f"{level:g}"]
        for name in names:
            _, noisy, noisy_std, denoised, denoised_std = curves[name][i]
            mark = "**" if helps(noisy, noisy_std, denoised, denoised_std) else ""
            row += [f"{results.percent(noisy)} ± {100 * noisy_std:.2f}", f"{mark}{results.percent(denoised)} ± {100 * denoised_std:.2f}{mark}"]
        rows.append(row)
    lines += table(header, rows)
    lines += ["In bold: where denoising helps by the rule of 4B.", ""]
    for name, levels in curves.items():
        clean = next(c["accuracy_clean"] for c in dae["classifiers"] if c["name"] == name)
        gain, at = max((denoised - noisy, level) for level, noisy, _, denoised, _ in levels)
        helped = [level for level, *scores in levels if helps(*scores)]
        zero = next((denoised for level, _, _, denoised, _ in levels if level == 0), None)
        text = (f"- **{name}** (clean {results.percent(clean)}): denoising helps at noise {levels_text(helped)}, most at "
                f"{at:g} ({points(gain)})" if helped else
                f"- **{name}** (clean {results.percent(clean)}): denoising helps at no level tried (at best {points(gain)}, "
                f"at {at:g})")
        if zero is not None:
            text += (f"; at noise 0 the autoencoder costs it {100 * (clean - zero):.2f} points, the price of "
                     "passing clean digits through a denoiser" if zero < clean else "; at noise 0 it costs nothing")
        lines.append(text + ".")
    if len(names) > 1:
        both = [(curves[names[0]][i], curves[names[1]][i]) for i in range(len(dae["noise_levels"]))]
        noisy_gap = sum(a[1] - b[1] for a, b in both) / len(both)
        denoised_gap = sum(a[3] - b[3] for a, b in both) / len(both)
        behind = [level for (level, a_noisy, *_), (_, b_noisy, *_) in both if a_noisy < b_noisy - HELPS_BY]
        lines += [f"- **The two together**: on noisy digits the {names[0]} leads the {names[1]} by "
                  f"{100 * noisy_gap:.2f} points on average over the levels"
                  + (f", yet falls behind it at noise {levels_text(behind)} (plausibly because its filters, learned "
                     "on clean strokes, also fire on the noise's specks)" if behind else "")
                  + f"; after denoising it leads by {100 * denoised_gap:.2f}. "
                  + ("Denoising narrows the gap: once the noise is removed, what is left to classify is a clean-"
                     "looking digit, which both read well." if abs(denoised_gap) < abs(noisy_gap) else
                     "Denoising does not narrow the gap.")]
    lines += ["", "**Discussion**: a classifier trained on clean digits has never seen salt-and-pepper noise, "
              "so its accuracy falls as the noise grows; the autoencoder, trained on that corruption, hands "
              "it digits that look like its training data again, which pays wherever the digit is still "
              "there to recover and the denoiser has learned to recover it. Near noise 1 no digit is left "
              "(every pixel replaced), and every curve meets chance; at noise 0 a denoiser can only "
              "blur detail. Where the rows above help, and by how much, is this run's answer.", ""]
    return lines


def generating(records, out):
    lines, dae = opening(records, "denoise_autoencoder", "", "python denoise_autoencoder.py",
                         "4D", "Generating digits with the decoder alone",
                         "Explain how you can use the decoder part of the denoising auto-encoder to generate synthetic "
                         "'hand-written' digits?")
    if dae is None:
        return lines
    lines += [
        "The decoder is a model of its own (`decoder` in `denoise_autoencoder.py`): it maps any code of "
        "the latent size to a 28×28 image. To generate digits, choose codes and decode them; codes "
        "like the encoder's give digit-like images. The procedure:",
        "",
        "1. Encode the training digits to get their codes (the encoder alone).",
        "2. Choose new codes: (a) the mean code of each class; (b) points on the straight line between "
        "two test digits' codes; (c) random draws from a multivariate Gaussian with the training codes' "
        "mean and covariance, clipped at 0 (the encoder's ReLU never gives negative codes).",
        "3. Decode the chosen codes with the decoder alone.",
        "",
        "The class means give a typical, smoothed digit of each class; the walks show the decoder "
        "morphing one digit into another through in-between shapes; the random codes give new digits, "
        "mostly readable, some hybrids, since a denoising autoencoder's code space is not trained to be "
        "filled evenly (a variational autoencoder would be).", ""]
    for name, caption in (("generate_class_means.png", "Decoded from each class's mean code."),
                          ("generate_interpolations.png", "Decoded along the line between two test digits' codes."),
                          ("generate_random.png", "Decoded from random codes drawn from a Gaussian fitted to "
                                                  "the training codes.")):
        lines += figure(out, name, caption)
    return lines


# The report


def provenance(records):
    """The banner: where the numbers come from, and how they differ from the lab's settings."""
    lines = []
    made = {script: records[script] for script in ("mlp_mnist", "cnn_mnist", "denoise_autoencoder") if records[script]}
    if any(record.get("config", {}).get("quick") for record in made.values()):
        train, test = data.QUICK_SIZES
        lines += [f"> **A quick run.** These records come from `--quick` runs: {train:,} training and "
                  f"{test:,} test digits and 1-2 epochs. They show that every part works; their numbers "
                  "do not answer the lab and are not comparable with its references. `make lab` makes "
                  "the lab's numbers.", ""]
    others = [f"`{script}` {caveat(record, script).strip(' *()')}" for script, record in made.items()
              if caveat(record, script) and not record.get("config", {}).get("quick")]
    if others:
        lines += ["> **Settings that differ from the lab's**: " + "; ".join(others)
                  + ". Numbers marked so below come from them.", ""]
    env = next((record.get("environment") for record in made.values()), None)
    if env:
        lines += [f"Machine: {env['cpu']}, {env['cores']} cores. Python {env['python']}, TensorFlow "
                  f"{env['tensorflow']}, Keras {env['keras']}, JAX {env.get('jax', '–')}.", ""]
    return lines


def wall_times(records):
    """Each part of the lab with its wall time and backend, from the published run.json, their
    total, then the improved CNN's (beyond the lab)."""
    def rows(mains):
        found = []
        for main in mains:
            meta, backend = records["runs"][main], records[main].get("environment", {}).get("backend", "–")
            for name, part in meta.get("parts", {}).items():
                found.append((f"`{meta['script']}.py`: {name}", backend, part["wall_seconds"]))
        return found
    lab_rows, beyond = rows(SCRIPTS), rows(["cnn_improved"])
    if not lab_rows + beyond:
        return []
    cells = [(name, backend, f"{seconds:,.0f}") for name, backend, seconds in lab_rows]
    cells.append(("**the lab's parts**", "", f"**{sum(seconds for *_, seconds in lab_rows):,.0f}**"))
    cells += [(f"{name} (`make improved`, beyond the lab)", backend, f"{seconds:,.0f}") for name, backend, seconds in beyond]
    return ["## Wall time", ""] + table(["part", "backend", "#seconds"], cells)


SECTIONS = (preprocessing, mlp_layers, mlp_loss, mlp_curves, mlp_study, cnn_model, cnn_versus_dense,
            autoencoder, noise_levels, accuracy_against_noise, generating)


def render(out):
    records = read_records(out)
    lines = ["# The Keras MNIST lab: report", "",
             f"Written by `{PROG}` from the records in this folder's `results/` and the figures in "
             "`plots/`: every number and every comparison below is computed from them, so the report "
             "describes the runs that made them.", ""]
    lines += provenance(records)
    for section in SECTIONS:
        lines += section(records, out)
    lines += wall_times(records)
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None):
    parser = cli.LabParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=".", help="the folder holding results/ and plots/")
    args = parser.parse_args(argv)
    if not os.path.isdir(os.path.join(args.out, "results")):
        raise LabError(f"no results/ under {args.out}; run the lab first (make lab), or pass --out "
                       "to the folder it wrote to")
    path = os.path.join(args.out, "REPORT.md")
    results.write_text(path, render(args.out))
    print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, prog=PROG))
