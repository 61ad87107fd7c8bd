"""Question 2D's L2 study as numbers and figures: its trials stored, summarised, tabled and drawn,
for one run or several; no Keras here (the runs command compares studies)."""

import functools
import textwrap

import numpy as np
from matplotlib.figure import Figure

from mnistlab import lab, plots, records
from mnistlab.records import Stopwatch, diverged_at, mean_std, percent

NAME = "mlp_l2_study"  # the study's record in a run
TRIALS = f"{NAME}_trials.json"  # its store of finished trials, the study's resume state
REFERENCES = {"Hinton": lab.HINTON, "the lab report": lab.LAB_REPORT_MLP}

def read_trials(path):
    """The trial store at ``path``, checked trial by trial ({"trials": []} if there is none)."""
    trials = records.ListOf(records.every(records.TRIAL_FIELDS))
    return records.read(path, {"trials": trials}, required=("trials",), what="trials") or {"trials": []}

def run_trials(a_run, settings, factors, replicates, trainings, trial, load):
    """Question 2D: ``trial(settings, load(data file), (l2, replicate))`` for each not stored yet, each
    stored as it finishes; then the study's record, table and figure. Returns its rows."""
    path = a_run.result(TRIALS)
    store = read_trials(path)
    done = {(t["l2"], t["replicate"]) for t in store["trials"] if t["settings"] == settings}
    todo = [(l2, r) for l2 in factors for r in range(replicates) if (l2, r) not in done]
    total = len(factors) * replicates
    print(f"\nRegularisation study: {total} trials, {total - len(todo)} already saved in {path}"
          + (f"; training {len(todo)}, {trainings.describe(len(todo))}" if todo else ""), flush=True)
    clock = Stopwatch()
    task = functools.partial(_timed, functools.partial(trial, settings))
    for count, ((l2, replicate), (history, seconds)) in enumerate(trainings.run(task, todo, load), 1):
        diverged = diverged_at(history)
        # A diverged trial stops before its one validation: it has no accuracy to average.
        final = history.get("val_accuracy", [None])[-1] if not diverged else None
        store["trials"].append({"settings": settings, "l2": l2, "replicate": replicate,
                                "final_val_accuracy": final, "diverged_at_epoch": diverged,
                                "history": history, "wall_seconds": seconds})
        records.write_json(path, store)
        # Once every worker has finished one, the pace so far is a fair guide to the rest.
        pace = count >= trainings.slots(len(todo)) and count < len(todo)
        left = f", about {clock.seconds() / count * (len(todo) - count):.0f} s left" if pace else ""
        outcome = (f"diverged in epoch {diverged} (try a smaller --lr)" if diverged
                   else f"final validation accuracy {percent(final)}")
        print(f"  trial {total - len(todo) + count}/{total} (L2 {l2:g}, replicate {replicate + 1}): "
              f"{outcome} in {seconds:.0f} s{left}", flush=True)

    trials = [t for t in store["trials"] if t["settings"] == settings and t["l2"] in factors]
    rows = summarise(trials, factors)
    table = format_table(rows)
    print("\n" + table)
    wall, workers = round(clock.seconds(), 1), trainings.slots(len(todo))
    a_run.write_record(NAME, {"settings": settings, "rows": rows, "trials_run": len(todo), "workers": workers,
                              "wall_seconds": wall})
    records.write_text(a_run.result(f"{NAME}.md"),
                       table + f"\n{len(todo)} trials trained in {wall:.0f} s, {workers} at a time, in run {a_run.named()}\n")
    plot_study(rows, settings, a_run.plot(f"{NAME}.png"))
    return rows

def _timed(trial, data, job):
    clock = Stopwatch()
    return trial(data, job), clock.seconds()

def summarise(trials, factors):
    """Each factor's mean, std and best final validation accuracy over the replicates that did not diverge."""
    rows = []
    for l2 in factors:
        ordered = sorted((t for t in trials if t["l2"] == l2), key=lambda t: t["replicate"])
        accuracies = [t["final_val_accuracy"] for t in ordered]
        finite = [a for a in accuracies if a is not None]
        mean, std = mean_std(finite) if finite else (None, None)
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
    return "–" if mean is None else f"{percent(mean)} ± {percent(std)}"

def format_table(rows):
    lines = ["| L2 factor | replicates | mean final val. accuracy | std | best |", "|---:|---:|---:|---:|---:|"]
    for row in rows:
        diverged = f" ({row['diverged']} diverged)" if row.get("diverged") else ""
        lines.append(f"| {row['l2']:g} | {row['replicates']}{diverged} | {percent(row['mean'])} | "
                     f"{percent(row['std'])} | {percent(row['best'])} |")
    return "\n".join(lines) + "\n"

def describe_settings(settings):
    """``L2 on both hidden layers of a 500-300 MLP (SGD lr 0.1, 40 epochs)``."""
    layers = "both hidden layers" if settings["l2_layers"] == "all" else "the first hidden layer"
    lr = f"SGD lr {settings['lr']:g}" + (", cosine-decayed to 0" if settings.get("schedule") == "cosine" else "")
    return (f"L2 on {layers} of a {'-'.join(map(str, settings['hidden']))} MLP "
            f"({lr}, {plots.plural(settings['epochs'], 'epoch')})")

# Figures

def _draw_factors(ax, series, factors):
    """Mean +- std per factor, a line per (label, rows, is_current, show_trials), the factors evenly spaced."""
    position = {f: i for i, f in enumerate(factors)}
    for i, ((label, rows, current, show_trials), color) in enumerate(zip(series, plots.RUN_COLORS)):
        dodge = 0.08 * (i - (len(series) - 1) / 2)  # side by side: error bars do not hide each other
        if show_trials:
            xs = [position[r["l2"]] + dodge for r in rows for a in r["accuracies"] if a is not None]
            ax.scatter(xs, [100 * a for a in all_trials(rows)], s=18, color=color, alpha=0.35, label="each replicate")
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
    ax = Figure(figsize=(8, 5)).subplots()
    _draw_factors(ax, [("mean ± standard deviation", rows, True, True)], [r["l2"] for r in rows])
    if best_row(rows) is None:
        ax.text(0.5, 0.25, "every trial diverged: no accuracy to show\n(try a smaller --lr)",
                transform=ax.transAxes, ha="center", va="center", fontsize=12,
                bbox=dict(facecolor="white", edgecolor="#b2182b"))
    ax.set_title(f"Question 2D: {describe_settings(settings)},\n"
                 f"{plots.plural(rows[0]['replicates'], 'replicate')} per factor")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=9)
    plots.save_figure(ax.figure, path)

def plot_study_runs(series, path, title, legend_title):
    """Several runs' studies [(label, rows, is_current)]: per factor, and each run's trials pooled."""
    fig = Figure(figsize=(13, 5.2))
    ax, pooled = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.45, 1], "wspace": 0.45})
    factors = sorted({r["l2"] for _, rows, _ in series for r in rows})
    _draw_factors(ax, [(label, rows, current, False) for label, rows, current in series], factors)
    ax.set_title("per L2 factor: mean ± std over its replicates")
    ax.legend(loc="best", fontsize=8.5, title=legend_title, title_fontsize=8.5)

    # The runs from top to bottom in the legend's order, oldest first.
    for i, ((label, rows, current), color) in enumerate(zip(series, plots.RUN_COLORS)):
        y, trials = len(series) - 1 - i, all_trials(rows)
        if len(trials) > 1:
            mean, std = (100 * value for value in mean_std(trials))
            pooled.scatter(100 * np.asarray(trials), np.full(len(trials), y + 0.18), s=14, color=color, alpha=0.5)
            pooled.errorbar(mean, y, xerr=std, fmt="D", capsize=5, color=color,
                            markersize=7, elinewidth=2.2 if current else 1.4)
            pooled.annotate(f"{mean:.2f}%", (mean, y), textcoords="offset points",
                            xytext=(0, -13), ha="center", fontsize=8.5, color=color)
    for (name, value), style in zip(REFERENCES.items(), ("--", ":")):
        pooled.axvline(100 * value, color="#444444", linestyle=style, linewidth=1.2)
    pooled.set_yticks(range(len(series)), [textwrap.fill(label, 28) for label, *_ in reversed(series)], fontsize=8.5)
    pooled.set_ylim(-0.7, len(series) - 0.3)
    pooled.margins(x=0.1)
    pooled.set(title="all trials of each run: mean ± std (dots: each trial)", xlabel="final validation accuracy (%)")
    pooled.grid(alpha=0.3, axis="x")
    fig.suptitle(title, fontsize=12)
    return plots.save_figure(fig, path)
