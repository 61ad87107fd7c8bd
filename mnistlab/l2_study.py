"""Question 2D's L2 study, as numbers and figures: each factor's replicates summarised, the
table and the figure of one run, and the studies of several runs compared.

The training of the trials is ``mlp_mnist.py``'s; this module only reads and draws what they
recorded (the record ``NAME`` in a run), so that the runs command can compare studies without
Keras.
"""

import os

from mnistlab import lab, plots, results, runs  # plots first: it picks the file-only backend

import matplotlib.pyplot as plt
import numpy as np

NAME = "mlp_l2_study"  # the study's record in a run
# What each trial in the study's store holds (the store is resume state: checked before use).
TRIAL_FIELDS = {"settings": dict, "l2": (int, float), "replicate": int,
                "final_val_accuracy": (int, float, type(None))}
REFERENCES = {"Hinton": lab.HINTON, "the lab report": lab.LAB_REPORT_MLP}


def summarise(trials, factors):
    """Mean, standard deviation and best final validation accuracy for each factor over the
    replicates that did not diverge (None if all did), and the replicates' own accuracies (in
    replicate order, None for a diverged one)."""
    rows = []
    for l2 in factors:
        ordered = sorted((t for t in trials if t["l2"] == l2), key=lambda t: t["replicate"])
        accuracies = [t["final_val_accuracy"] for t in ordered]
        finite = [a for a in accuracies if a is not None]
        mean, std = results.mean_std(finite) if finite else (None, None)
        rows.append({"l2": l2, "replicates": len(accuracies), "mean": mean, "std": std,
                     "best": max(finite, default=None), "diverged": len(accuracies) - len(finite),
                     "accuracies": accuracies})
    return rows


def best_row(rows):
    """The factor of the highest mean final validation accuracy, or None if every trial diverged."""
    return max((r for r in rows if r["mean"] is not None), key=lambda r: r["mean"], default=None)


def all_trials(rows):
    """The final validation accuracy of every trial that did not diverge, all factors together."""
    return [accuracy for row in rows for accuracy in row.get("accuracies", []) if accuracy is not None]


def mean_std_text(mean, std):
    return "–" if mean is None else f"{results.percent(mean)} ± {results.percent(std)}"


def format_table(rows):
    lines = ["| L2 factor | replicates | mean final val. accuracy | std | best |",
             "|---:|---:|---:|---:|---:|"]
    for row in rows:
        diverged = f" ({row['diverged']} diverged)" if row.get("diverged") else ""
        lines.append(f"| {row['l2']:g} | {row['replicates']}{diverged} | {results.percent(row['mean'])} | "
                     f"{results.percent(row['std'])} | {results.percent(row['best'])} |")
    return "\n".join(lines) + "\n"


def describe_settings(settings):
    """``L2 on both hidden layers of a 500-300 MLP (SGD lr 0.1, 40 epochs)``."""
    layers = "both hidden layers" if settings["l2_layers"] == "all" else "the first hidden layer"
    lr = f"SGD lr {settings['lr']:g}" + (", cosine-decayed to 0" if settings.get("schedule") == "cosine" else "")
    return (f"L2 on {layers} of a {'-'.join(map(str, settings['hidden']))} MLP "
            f"({lr}, {plots.plural(settings['epochs'], 'epoch')})")


# Figures


def _draw_factors(ax, series, factors):
    """Mean +- std per factor, one line per (label, rows, is_current, show_trials) of
    ``series``; the factors evenly spaced (they span three orders of magnitude, bunched at one
    end), labelled with their values; references as horizontal lines."""
    position = {f: i for i, f in enumerate(factors)}
    for i, ((label, rows, current, show_trials), color) in enumerate(zip(series, plots.RUN_COLORS)):
        dodge = 0.08 * (i - (len(series) - 1) / 2)  # side by side: error bars do not hide each other
        if show_trials:
            xs = [position[r["l2"]] + dodge for r in rows for a in r["accuracies"] if a is not None]
            ax.scatter(xs, [100 * a for a in all_trials(rows)], s=18, color=color, alpha=0.35,
                       label="each replicate")
        scored = [r for r in rows if r["mean"] is not None]  # a factor whose every trial diverged has none
        ax.errorbar([position[r["l2"]] + dodge for r in scored], [100 * r["mean"] for r in scored],
                    yerr=[100 * r["std"] for r in scored], fmt="o-", capsize=4, color=color,
                    label=label + (" (this run)" if current and len(series) > 1 else ""), **plots.run_style(current))
        best = best_row(rows)
        if best and len(series) == 1:
            ax.plot(position[best["l2"]], 100 * best["mean"], "*", markersize=16, color="#ffbf00",
                    markeredgecolor="black", zorder=4,
                    label=f"best mean: {100 * best['mean']:.2f}% at L2 {best['l2']:g}")
    for (name, value), style in zip(REFERENCES.items(), ("--", ":")):
        ax.axhline(100 * value, color="#444444", linestyle=style, linewidth=1.2, label=f"{name}: {100 * value:.2f}%")
    ax.set_xticks(range(len(factors)), [f"{f:g}" for f in factors])
    ax.set_xlim(-0.5, len(factors) - 0.5)
    ax.set(xlabel="L2 factor (evenly spaced, not to scale)", ylabel="final validation accuracy (%)")
    ax.grid(alpha=0.3)


def plot_study(rows, settings, path):
    """One run's study: each replicate, mean +- std per factor, the best mean, the references."""
    fig, ax = plt.subplots(figsize=(8, 5))
    _draw_factors(ax, [("mean ± standard deviation", rows, True, True)], [r["l2"] for r in rows])
    if best_row(rows) is None:
        ax.text(0.5, 0.25, "every trial diverged: no accuracy to show\n(try a smaller --lr)",
                transform=ax.transAxes, ha="center", va="center", fontsize=12,
                bbox=dict(facecolor="white", edgecolor="#b2182b"))
    ax.set_title(f"Question 2D: {describe_settings(settings)},\n"
                 f"{plots.plural(rows[0]['replicates'], 'replicate')} per factor")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=9)
    plots.save_figure(fig, path)


def plot_study_runs(series, path, title, legend_title):
    """Studies of several runs. ``series`` is [(label, study rows, is_current)]. Left: mean +-
    std per L2 factor; right: each run's trials all together, each a dot, so the runs can be
    ranked at a glance."""
    fig, (ax, pooled) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [1.45, 1], "wspace": 0.45})
    factors = sorted({r["l2"] for _, rows, _ in series for r in rows})
    _draw_factors(ax, [(label, rows, current, False) for label, rows, current in series], factors)
    ax.set_title("per L2 factor: mean ± std over its replicates")
    ax.legend(loc="best", fontsize=8.5, title=legend_title, title_fontsize=8.5)

    # The runs from top to bottom in the legend's order, oldest first.
    for i, ((label, rows, current), color) in enumerate(zip(series, plots.RUN_COLORS)):
        y, trials = len(series) - 1 - i, all_trials(rows)
        if len(trials) > 1:
            mean, std = (100 * value for value in results.mean_std(trials))
            pooled.scatter(100 * np.asarray(trials), np.full(len(trials), y + 0.18), s=14, color=color, alpha=0.5)
            pooled.errorbar(mean, y, xerr=std, fmt="D", capsize=5, color=color,
                            markersize=7, elinewidth=2.2 if current else 1.4)
            pooled.annotate(f"{mean:.2f}%", (mean, y), textcoords="offset points",
                            xytext=(0, -13), ha="center", fontsize=8.5, color=color)
    for (name, value), style in zip(REFERENCES.items(), ("--", ":")):
        pooled.axvline(100 * value, color="#444444", linestyle=style, linewidth=1.2)
    pooled.set_yticks(range(len(series)), [plots.wrap(label, 28) for label, *_ in reversed(series)], fontsize=8.5)
    pooled.set_ylim(-0.7, len(series) - 0.3)
    pooled.margins(x=0.1)
    pooled.set(title="all trials of each run: mean ± std (dots: each trial)", xlabel="final validation accuracy (%)")
    pooled.grid(alpha=0.3, axis="x")
    fig.suptitle(title, fontsize=12)
    return plots.save_figure(fig, path)


# Runs compared


def compare_runs(metas, out, stem, current=None):
    """The studies of those of ``metas`` that made one: a table of mean +- std per factor and
    over all trials in OUT/results/STEM.md, the figure in OUT/plots/STEM.png; returns the table
    ("" when none of the runs made a study)."""
    studies = [(meta, study) for meta in metas if (study := runs.record_of(meta, NAME))]
    if not studies:
        return ""
    factors = sorted({row["l2"] for _, study in studies for row in study["rows"]})
    rows = ["| run | differing flags | " + " | ".join(f"L2 {f:g}" for f in factors)
            + " | all trials | study's wall time | run status |",
            "|---|---|" + "---:|" * (len(factors) + 1) + "---:|---|"]
    labels, legend_title = runs.legend_labels([meta for meta, _ in studies])
    for meta, study in studies:
        by_factor = {row["l2"]: row for row in study["rows"]}
        cells = [mean_std_text(by_factor.get(f, {}).get("mean"), by_factor.get(f, {}).get("std")) for f in factors]
        trials = all_trials(study["rows"])
        cells.append(f"{mean_std_text(*results.mean_std(trials))} ({len(trials)})" if len(trials) > 1 else "–")
        rows.append(f"| {meta['name']} | {runs.label(meta['changed'])} | " + " | ".join(cells)
                    + f" | {runs.fmt_seconds(study.get('wall_seconds'))} | {meta['status']} |")
    env = runs.record_of(studies[-1][0]).get("environment", {})
    machine = f"{env.get('cpu', 'this machine')}, {env.get('cores', '?')} cores"
    table = "\n".join(rows) + (f"\n\nMean ± standard deviation of the final validation accuracy over "
                               f"each factor's replicates, and over all the run's trials together "
                               f"(their number in brackets). Wall time: the study's trials, "
                               f"{studies[-1][1].get('workers', 1)} at a time, on {machine}.\n")
    plot_study_runs([(text, study["rows"], meta["name"] == current) for (meta, study), text in zip(studies, labels)],
                    os.path.join(out, "plots", f"{stem}.png"),
                    f"Question 2D across {plots.plural(len(studies), 'run')}: final validation accuracy",
                    legend_title)
    results.write_text(os.path.join(out, "results", f"{stem}.md"), table)
    return table
