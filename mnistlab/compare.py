"""Runs compared: a script's latest runs each time one completes, and any runs the runs command
names; one curve and one table row per run (and, for runs that made an L2 study, the studies)."""

import os

from mnistlab import files, l2_study, plots, stats
from mnistlab.errors import LabError
from mnistlab.run import Run, all_runs, fmt_seconds, label, legend_labels, record_of, with_edits

LATEST = 8  # runs in each automatic comparison
CURVES = ("val_accuracy", "val_loss")  # what a comparison draws, the first that every run has


def start(script, args):
    """A ``Run`` of ``script`` that, once complete, is compared with the script's latest runs."""
    return Run(script, args, after=[latest])


def latest(run):
    """Compare the latest runs of ``run``'s script in OUT/plots and OUT/results."""
    metas = [meta for meta in all_runs(run.out) if meta["script"] == run.script and record_of(meta)][-LATEST:]
    runs_and_studies(metas, run.out, f"{run.script}_runs", f"{l2_study.NAME}_runs", run.name)
    print(f"Compared with earlier runs: {run.out}/plots/{run.script}_runs.png, "
          f"{run.out}/results/{run.script}_runs.md")


def runs_and_studies(metas, out, stem, study_stem, current=None):
    """``compare`` the runs in STEM, and their L2 studies, where they made them, in STUDY_STEM;
    returns both tables (the second "" without a study)."""
    metas = with_edits(metas)
    return compare(metas, out, stem, current), l2_study.compare_runs(metas, out, study_stem, current)


def curve_metric(records):
    """The validation metric that every one of ``records`` has, to draw as their curves."""
    losses = {record.get("loss") for record in records}
    for metric in CURVES:
        if all(metric in record.get("history", {}) for record in records):
            if metric == "val_loss" and len(losses) > 1:  # one axis cannot hold two losses
                break
            return metric
    raise LabError("these runs record different kinds of curves (accuracy, or losses of other kinds); "
                   "compare runs of one script at a time")


def fmt_metric(metric, value):
    if "accuracy" in metric:
        return stats.percent(value)
    return "–" if value is None else f"{value:.4f}"


def fmt_parts(meta):
    """Each part's status and wall time: ``lab MLP 12 s, L2 study interrupted (80 s)``."""
    return ", ".join(f"{name} {fmt_seconds(part['wall_seconds'])}" if part["status"] == "complete"
                     else f"{name} {part['status']} ({fmt_seconds(part['wall_seconds'])})"
                     for name, part in meta.get("parts", {}).items()) or meta["status"]


def compare(metas, out, stem, current=None):
    """One curve per run (validation accuracy, or loss for the autoencoder) in OUT/plots/STEM.png
    and a table in OUT/results/STEM.md; returns the table."""
    records = [record_of(meta) for meta in metas]
    for meta, record in zip(metas, records):
        if not record.get("history"):
            raise LabError(f"run {meta['name']} has not finished an epoch yet; nothing to compare")
    metric = curve_metric(records)
    rows = ["| run | differing flags | final validation " + metric[4:] + " | test accuracy | epochs "
            "| parts: wall time (status) | run status |", "|---|---|---:|---:|---:|---|---|"]
    curves = []
    labels, legend_title = legend_labels(metas)
    for meta, record, text in zip(metas, records, labels):
        values = record["history"][metric]
        curves.append((text, values, meta["name"] == current))
        rows.append(f"| {meta['name']} | {label(meta['changed'])} | {fmt_metric(metric, values[-1])} | "
                    f"{fmt_metric('accuracy', record.get('test_accuracy'))} | {len(values)} | "
                    f"{fmt_parts(meta)} | {meta['status']} |")
    scripts = sorted({meta["script"] for meta in metas})
    plots.plot_runs(curves, metric, os.path.join(out, "plots", f"{stem}.png"),
                    f"{' and '.join(scripts)}: validation {metric[4:]} per epoch, "
                    f"{plots.plural(len(metas), 'run')} compared", legend_title)
    table = "\n".join(rows) + "\n"
    files.write_text(os.path.join(out, "results", f"{stem}.md"), table)
    return table

