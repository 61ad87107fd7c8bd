"""The report's sections for questions 1 and 2: the data, the MLP's layers, loss and curves,
and the L2 study against Hinton."""

import math
import os

from mnistlab import l2_study, lab, plots, runs
from mnistlab.report.common import (BLOCKS, HINTON_EXPERIMENT, Section, caveat, diverged, figure, layers_table,
                                    test_count)
from mnistlab.records import percent

def preprocessing(records, _, out):
    mlp = records["mlp_mnist"]
    sizes = mlp.get("examples")
    count = (f"{sizes['train']:,} training and {sizes['test']:,} test digits" if sizes
             else "60,000 training and 10,000 test digits")
    return [
        f"`keras.datasets.mnist.load_data()` gives {count}{caveat(mlp, 'mlp_mnist') if mlp else ''}: "
        "28×28 grey-level images as 8-bit integers from 0 (paper) to 255 (ink), and their labels 0-9. "
        "Each script then prepares them the same way (its `load_data`):",
        "",
    ] + BLOCKS["PREPROCESSING"]

def mlp_layers(records, mlp, out):
    dense = [row for row in mlp["layers"] if row["kind"] == "Dense"]
    sizes = [math.prod(mlp["layers"][0]["output_shape"][1:])] + [row["output_shape"][-1] for row in dense]
    formula = ", ".join(f"{a}×{b} + {b} = {a * b + b:,}" for a, b in zip(sizes, sizes[1:]))
    hidden = dense[:-1]
    lines = layers_table(mlp)
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
    ] + BLOCKS["MLP_UNITS"]
    return lines + figure(out, "mlp_mnist_model.png", "The lab MLP as this run built it: each layer's output shape "
                                                      "and parameter count.")

def mlp_loss(records, mlp, out):
    figures = figure(out, "mlp_mnist_loss.png", "The lab MLP's cross-entropy per epoch, on the training and the test set.")
    if diverged(mlp, "mlp_mnist"):
        return BLOCKS["CROSS_ENTROPY"] + diverged(mlp, "mlp_mnist") + figures
    loss, first = mlp["history"]["loss"][-1], mlp["history"]["loss"][0]
    lines = BLOCKS["CROSS_ENTROPY"] + [
        f"**In this run**{caveat(mlp, 'mlp_mnist')}: the training loss fell from {first:.3f} in the first "
        f"epoch to {loss:.4f} in the last; the test loss is {mlp['test_loss']:.4f}, so the network gives "
        f"the right digit a probability of {math.exp(-mlp['test_loss']):.1%} on average (geometric mean "
        "over the test images, e^−loss).", ""]
    return lines + figures

def mlp_curves(records, mlp, out):
    if diverged(mlp, "mlp_mnist"):
        return diverged(mlp, "mlp_mnist") + figure(out, "mlp_mnist_accuracy.png", "The lab MLP's accuracy per epoch.")
    train, val = mlp["history"]["accuracy"], mlp["history"]["val_accuracy"]
    epochs = len(val)
    reached = next((i for i, a in enumerate(val, 1) if a is not None and a >= 0.97), None)
    at_ten = (f" After the handout's 10 epochs it stood at {percent(val[9])}." if epochs > 10 else "")
    lines = [
        f"This run trained for {epochs} epochs{caveat(mlp, 'mlp_mnist')}"
        + (f" (the handout says 10, and {lab.MLP_EPOCHS_WHY}: the project trains {lab.MLP_EPOCHS} by default, "
           "see docs/scripts.md)." if epochs != 10 else ", as the handout asks.")
        + f"{at_ten} Validation accuracy {'first reached 97% in epoch ' + str(reached) if reached else 'never reached 97%'} "
        f"and ended at {percent(val[-1])}, the test accuracy of the final model; training accuracy ended at "
        f"{percent(train[-1])}, {abs(100 * (train[-1] - val[-1])):.2f} points "
        f"{'above' if train[-1] >= val[-1] else 'below'} it. "
        + ("A training accuracy this far above the validation accuracy shows the network starting to "
           "fit its training digits more than digits in general." if train[-1] - val[-1] > 0.01 else
           "Training accuracy is the lower one: it is averaged over the epoch while the weights still "
           "improve, validation accuracy is measured after it." if val[-1] - train[-1] > 0.01 else
           "The two curves stay close: the small network is not yet overfitting."), ""]
    return lines + figure(out, "mlp_mnist_accuracy.png", "The lab MLP's training and validation (test-set) "
                                                         "accuracy per epoch.")

def study_title(study):
    hidden = "-".join(map(str, study["settings"]["hidden"])) if study else "-".join(map(str, lab.STUDY_HIDDEN))
    return f"The {hidden} MLP with L2 weight decay, against Hinton's {percent(lab.HINTON)}"

def mlp_study(records, study, out):
    mlp = records["mlp_mnist"]
    settings, rows = study["settings"], study["rows"]
    note = caveat(study, "mlp_mnist")  # the study's own run's flags: another run may have made the lab MLP
    tests = test_count(mlp)
    lines = [f"The study{note}: {l2_study.describe_settings(settings)}, batch {settings['batch_size']}; "
              f"{len(rows)} L2 factors × {rows[0]['replicates']} replicates, each replicate starting from its "
              "own initial weights (the same ones at every factor). The L2 penalty λ·Σw² is added to the loss "
              "for the kernels of the hidden layers, pulling weights toward 0 unless the data pays for them.", ""]
    lines += l2_study.format_table(rows).splitlines() + [""]
    lines += figure(out, "mlp_l2_study.png", "Final validation accuracy against the L2 factor: each replicate, "
                                              "mean ± standard deviation, and the two references.")
    best = l2_study.best_row(rows)
    if best is None:
        return lines + ["Every trial diverged: there is no accuracy to compare; rerun with a smaller `--lr`.", ""]
    means = [r["mean"] for r in rows if r["mean"] is not None]
    typical_std = sum(r["std"] for r in rows if r["std"] is not None) / len(means)
    lines += best_and_gap(rows, best, note, tests, means, typical_std)
    lines += hinton_experiment(records["hinton"], out)
    lines += [BLOCKS["HINTON_GAP"][0].format(hinton=percent(lab.HINTON))
              + f" Here the replicates of one factor differ by {100 * typical_std:.2f} points (standard deviation) "
              "by their initial weights alone, so a best of many runs sits above a typical one.", ""]
    return lines

def best_and_gap(rows, best, note, tests, means, typical_std):
    """Question 2D's numbers: the best trial and factor, and the best factor's gap to Hinton set
    against the replicates' own spread (``means``: the factors' mean accuracies)."""
    top = max(l2_study.all_trials(rows))
    gap = lab.HINTON - best["mean"]
    spread = max(means) - min(means)
    within = gap <= best["std"] if best["std"] else gap <= 0
    return [
        f"**Best validation accuracy**: the best single trial reached {percent(top)}; the best factor, "
        f"L2 {best['l2']:g}, averaged {percent(best['mean'])} ± {percent(best['std'])} over its "
        f"{best['replicates'] - best.get('diverged', 0)} replicates{note}, "
        + ("equal to the lab report's best, " if round(best["mean"], 4) == lab.LAB_REPORT_MLP else
           f"{abs(100 * (best['mean'] - lab.LAB_REPORT_MLP)):.2f} points {'above' if best['mean'] > lab.LAB_REPORT_MLP else 'below'} "
           "the lab report's best, ") + f"{percent(lab.LAB_REPORT_MLP)}.",
        "",
        f"**How close to Hinton**: {abs(100 * gap):.2f} points {'below' if gap > 0 else 'above'} his "
        f"{percent(lab.HINTON)}, that is {abs(gap) * tests:.0f} of the {tests:,} test digits; "
        + (f"the gap is {abs(gap) / best['std']:.1f} times the spread of that factor's replicates, "
           if best["std"] else "")
        + ("so it lies within the replicates' own variation." if within else
           "so it is not explained by the replicates' own variation.")
        + f" Across the factors the means differ by {100 * spread:.2f} points, against a typical "
        f"spread of {100 * typical_std:.2f} points between replicates of one factor: "
        + ("within this range the choice of factor matters less than the luck of the initial weights."
           if spread < 2 * typical_std else "the factor matters more than the luck of the initial weights."),
        ""]

def hinton_experiment(summary, out):
    """The Hinton experiment (experiments/hinton), from its comparison's JSON, when the folder has it."""
    arms = [entry for entry in summary.get("runs", []) if entry["all_trials"]["mean"] is not None]
    if not arms:
        return []
    best = max(arms, key=lambda arm: arm["all_trials"]["mean"])
    shared = set.intersection(*(set(arm["changed"]) for arm in arms))
    changed = ", ".join(flag for flag in best["changed"] if flag not in shared) or "no other flag"
    pooled = best["all_trials"]
    lines = [
        f"**Tested, not guessed** (the experiment of experiments/hinton/README.md, `make hinton`: {len(arms)} pre-declared arms at "
        f"{plots.plural(len(best['factors']), 'factor')}, each changing what Hinton's training may have done differently): the best arm, "
        f"*{changed}*, pooled {percent(pooled['mean'])} ± {percent(pooled['std'])} over {pooled['trials']} trials, "
        f"{100 * (lab.HINTON - pooled['mean']):.2f} points short of {percent(lab.HINTON)}; "
        + ("no arm reached it." if all(arm["all_trials"]["mean"] < lab.HINTON for arm in arms) else "it reached it.")
        + " Its table:", ""]
    lines += runs.format_runs_table(summary).strip().splitlines() + [""]
    figure_path = f"{HINTON_EXPERIMENT}/plots/{l2_study.NAME}_runs.png"
    if os.path.isfile(os.path.join(out, figure_path)):
        lines += [f"![the arms compared]({figure_path})", ""]
    return lines

SECTIONS = (
    Section("1", "Preprocessing the digits", "Explain the data pre-processing", preprocessing),
    Section("2A", "The MLP's layers, sizes and parameters", "How many layers does the network in the notebook have?",
            mlp_layers, "mlp_mnist", "layers", "python mlp_mnist.py"),
    Section("2B", "The loss: categorical cross-entropy", "What loss-function is used to train the network?",
            mlp_loss, "mlp_mnist", "history/loss test_loss", "python mlp_mnist.py"),
    Section("2C", "The MLP's accuracy per epoch",
            "Train the network for 10 epochs and plot the training and validation accuracy for each epoch.",
            mlp_curves, "mlp_mnist", "history/accuracy history/val_accuracy", "python mlp_mnist.py"),
    Section("2D", study_title, "How close do you get to Hintons result?",
            mlp_study, l2_study.NAME, "rows settings", "python mlp_mnist.py --study"))
