"""The lab report, generated from a run's own results/ and plots/: every figure with a sentence
saying what it answers, the key numbers beside the lab's references, the machine, versions and
wall times.

    python -m mnistlab.report [--out DIR]     # writes DIR/REPORT.md
"""

import argparse
import os
import sys

from mnistlab import lab, results, runs


# (figure, what it answers), in the lab's order; figures a run did not make are left out.
FIGURES = [
    ("mlp_mnist_model.png", "2A. The lab MLP: layers, output shapes and parameter counts."),
    ("mlp_mnist_accuracy.png", "2C. Training and validation (test-set) accuracy per epoch of the lab MLP."),
    ("mlp_mnist_loss.png", "2C. The same run's cross-entropy loss per epoch."),
    ("mlp_l2_study.png", "2D. Final validation accuracy of the 500-300 MLP against the L2 factor on its "
                         "hidden layers' kernels: mean ± std over replicates, each replicate, Hinton's "
                         "and the lab report's references."),
    ("cnn_mnist_model.png", "3. The lab CNN: two 5×5 convolutions, each followed by 2×2 max pooling."),
    ("cnn_mnist_accuracy.png", "3. The lab CNN's accuracy per epoch: it passes the MLP within an epoch or two."),
    ("cnn_mnist_loss.png", "3. The lab CNN's loss per epoch."),
    ("cnn_mnist_confusion.png", "3. Which digits the CNN confuses with which, on the 10,000 test images."),
    ("cnn_mnist_misclassified.png", "3. The test digits the CNN gets wrong with the most confidence."),
    ("cnn_mnist_filters.png", "3. The 32 learned first-layer filters: stroke and edge detectors."),
    ("cnn_mnist_feature_maps.png", "3A. One digit's feature maps after each convolution and each max "
                                   "pooling: pooling halves the resolution and keeps the strongest responses."),
    ("cnn_improved_accuracy.png", "3+. The improved CNN (augmentation, batch norm, dropout) per epoch."),
    ("cnn_improved_confusion.png", "3+. The improved CNN's confusion matrix."),
    ("denoise_autoencoder_model.png", "4A. The denoising autoencoder: encoder to a 96-number code, then decoder."),
    ("denoise_autoencoder_loss.png", "4A. Its binary cross-entropy per epoch, noisy to clean."),
    ("denoise_examples.png", "4B. The same ten test digits, noisy and denoised, at noise levels 0 to 1."),
    ("denoise_accuracy.png", "4C. The accuracy of the best classifier of questions 2-3 (the lab CNN) "
                             "and of the lab MLP on clean, noisy and denoised test images against "
                             "the noise level."),
    ("generate_class_means.png", "4D. Digits decoded from each class's mean latent code."),
    ("generate_interpolations.png", "4D. Decoding the straight line between two digits' codes."),
    ("generate_random.png", "4D. New digits from random codes drawn from a Gaussian fitted to the training codes."),
]


PARTS = ("mlp_mnist", "mlp_l2_study", "cnn_mnist", "cnn_improved", "denoise_autoencoder")


def read_records(out):
    """Each part's results/PART.json as a dict, read once; empty for a part the run did not make."""
    return {part: runs.read_record(os.path.join(out, "results", f"{part}.json"))
            for part in PARTS}


def key_numbers(records):
    """Rows of (question, this run, the lab's reference) from the run's records."""
    rows = []
    mlp, study, cnn, improved, dae = (records[part] for part in PARTS)
    if mlp:
        rows.append(("2C. Lab MLP 64-64, test accuracy", results.percent(mlp.get("test_accuracy")), "–"))
    if study:
        best = max((r for r in study["rows"] if r["mean"] is not None), key=lambda r: r["mean"],
                   default={"l2": float("nan"), "mean": None, "std": None})
        rows.append((f"2D. Best regularised MLP (L2 {best['l2']:g}), mean final val. accuracy",
                     f"{results.percent(best['mean'])} ± {results.percent(best['std'])}",
                     f"lab report {results.percent(lab.LAB_REPORT_MLP)}; Hinton {results.percent(lab.HINTON)}"))
    if cnn:
        rows.append(("3. Lab CNN, test accuracy", results.percent(cnn.get("test_accuracy")), f"lab report {results.percent(lab.LAB_REPORT_CNN)}"))
    if improved:
        rows.append(("3+. Improved CNN, test accuracy", results.percent(improved.get("test_accuracy")), "aim 99.60%"))
    if dae and "noise_levels" in dae:
        levels = dae["noise_levels"]
        for scores in dae["classifiers"]:
            # The lab report scored with its question-2 MLP: its numbers are the MLP's references.
            mlp = scores["name"] == "lab MLP"
            for level, reference in ((0.4, "lab report's code: 43.2% → 90.9%"),
                                     (0.6, "lab report: denoising holds up to about 0.6")):
                if level in levels:
                    i = levels.index(level)
                    rows.append((f"4C. {scores['name']} accuracy at noise {level:g}: noisy → denoised",
                                 f"{results.percent(scores['accuracy_noisy'][i])} → {results.percent(scores['accuracy_denoised'][i])}",
                                 reference if mlp else "–"))
    return rows


def backend(record):
    return record.get("environment", {}).get("backend", "–")


def wall_times(records):
    """(part, backend, seconds) for each part of the lab the run made."""
    mlp, study, cnn, _, dae = (records[part] for part in PARTS)
    parts = [("MLP (lab 2A-2C)", backend(mlp), mlp.get("wall_seconds"))]
    if study:
        parts.append((f"L2 study (lab 2D): {study['trials_run']} trials, {study['workers']} at a time",
                      study["settings"]["backend"], study["wall_seconds"]))
    parts += [("lab CNN (lab 3)", backend(cnn), cnn.get("wall_seconds")),
              ("autoencoder and its studies (lab 4)", backend(dae), dae.get("total_wall_seconds"))]
    return [part for part in parts if part[2] is not None]


def environment(records):
    for part in ("mlp_mnist", "cnn_mnist", "denoise_autoencoder"):
        if records[part]:
            return records[part].get("environment")
    return None


HINTON_EXPERIMENT = os.path.join("experiments", "hinton")  # the README's pre-declared arms


def hinton_experiment(out):
    """The README's experiment on question 2D's gap to Hinton, when its runs are present."""
    table = os.path.join(out, HINTON_EXPERIMENT, "results", "mlp_l2_study_runs.md")
    if not os.path.isfile(table):
        return []
    with open(table) as f:
        text = f.read().strip()
    figure = f"{HINTON_EXPERIMENT}/plots/mlp_l2_study_runs.png"
    return ["", "## 2D by experiment: how close to Hinton's 98.47%?", "",
            "The README's pre-declared arms at the study's best factor and its neighbour, every arm "
            "reported. The lab validates on the test set, so choosing among the arms is a selection "
            "on the test set.", "", text, "", f"![the arms compared]({figure})"]


def render(out):
    lines = ["# The Keras MNIST lab: report", "",
             "Generated by `python -m mnistlab.report` from this run's `results/` and `plots/`.", ""]
    records = read_records(out)
    env = environment(records)
    if env:
        lines += [f"Machine: {env['cpu']}, {env['cores']} cores. Python {env['python']}, "
                  f"TensorFlow {env['tensorflow']}, Keras {env['keras']}, JAX {env.get('jax', '–')}.", ""]
    lines += ["## Key numbers", "", "| question | this run | the lab's reference |", "|---|---:|---|"]
    lines += [f"| {q} | {ours} | {ref} |" for q, ours, ref in key_numbers(records)]
    times = wall_times(records)
    if times:
        lines += ["", "## Wall time", "", "| part | backend | seconds |", "|---|---|---:|"]
        lines += [f"| {name} | {part_backend} | {seconds:,.0f} |" for name, part_backend, seconds in times]
        lines += [f"| **the lab's parts** | | **{sum(seconds for _, _, seconds in times):,.0f}** |"]
    improved = records["cnn_improved"]
    if improved.get("wall_seconds") is not None:
        lines += [f"| improved CNN (`make improved`, not part of the lab) | {backend(improved)} | "
                  f"{improved['wall_seconds']:,.0f} |"]
    lines += hinton_experiment(out)
    lines += ["", "## Figures", ""]
    for figure, sentence in FIGURES:
        if os.path.isfile(os.path.join(out, "plots", figure)):
            lines += [f"**{sentence}**", "", f"![{figure}](plots/{figure})", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=".", help="the run's folder, holding results/ and plots/")
    args = parser.parse_args(argv)
    if not os.path.isdir(os.path.join(args.out, "results")):
        print(f"report: error: no results/ under {args.out}; run the lab first (make lab)", file=sys.stderr)
        return 2
    path = os.path.join(args.out, "REPORT.md")
    results.write_text(path, render(args.out))
    print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    from mnistlab import cli

    sys.exit(cli.run(main, prog="python -m mnistlab.report"))
