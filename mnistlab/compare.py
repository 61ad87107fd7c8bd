"""Runs compared: a script's latest runs each time one completes, and any runs the runs command
names; one curve and one table row per run (and, for runs that made an L2 study, the studies),
each run labelled by the flags and code it differs by."""

import os

from mnistlab import code, files, l2_study, plots, records, stats
from mnistlab.errors import LabError
from mnistlab.schema import NUMBER, OPTIONAL_NUMBER, ListOf, every, read_checked

LATEST = 8  # runs in each automatic comparison
CURVES = ("val_accuracy", "val_loss")  # what a comparison draws, the first that every run has
# What ``studies``'s JSON holds: each run's study, per factor and over all its trials.
RUNS_SUMMARY = {"workers": int, "machine": str, "runs": ListOf(every({
    "run": str, "changed": ListOf(str), "status": str, "wall_seconds": OPTIONAL_NUMBER,
    "factors": ListOf(every({"l2": NUMBER, "mean": OPTIONAL_NUMBER, "std": OPTIONAL_NUMBER})),
    "all_trials": every({"mean": OPTIONAL_NUMBER, "std": OPTIONAL_NUMBER, "trials": int})}))}


def label(changed):
    """The flags a run differs by, as a table reads them."""
    return ", ".join(changed) if changed else "lab defaults"


def legend_labels(metas):
    """Each run's flags less those all share, and a title naming the shared ones."""
    shared = [flag for flag in metas[0]["changed"] if all(flag in m["changed"] for m in metas)] \
        if len(metas) > 1 else []
    labels = [label([flag for flag in m["changed"] if flag not in shared]) if shared else label(m["changed"])
              for m in metas]
    labels = [("no other flag" if shared and text == "lab defaults" else text) for text in labels]
    edited = any(flag.startswith(EDITED) for m in metas for flag in m["changed"])
    title = (("flags and code" if edited else "flags") + " that differ from the lab's"
             + (f" (all runs: {label(shared)})" if shared else ""))
    return labels, title


EDITED = "edited "  # how a run's label names the definitions of its script edited


def with_edits(metas):
    """``metas`` (oldest first), each ``changed`` also naming the definitions of its script edited
    since the first run of that script: the same flags with another model are told apart."""
    first = {}
    for meta in metas:
        first.setdefault(meta["script"], meta)
    return [{**meta, "changed": [*meta["changed"], *(
        [f"{EDITED}{', '.join(edits)}"] if (edits := code.edited(first[meta["script"]].get("code"), meta.get("code")))
        else [])]} for meta in metas]


def latest(run):
    """Compare the latest runs of ``run``'s script in OUT/plots and OUT/results."""
    metas = [meta for meta in records.all_runs(run.out)
             if meta["script"] == run.script and records.record_of(meta)][-LATEST:]
    runs_and_studies(metas, run.out, f"{run.script}_runs", f"{l2_study.NAME}_runs", run.name)
    print(f"Compared with earlier runs: {run.out}/plots/{run.script}_runs.png, "
          f"{run.out}/results/{run.script}_runs.md")


def runs_and_studies(metas, out, stem, study_stem, current=None):
    """``compare`` the runs in STEM and their L2 studies in STUDY_STEM; returns both tables."""
    metas = with_edits(metas)
    return compare(metas, out, stem, current), studies(metas, out, study_stem, current)


def curve_metric(kept):
    """The validation metric that every one of the records ``kept`` has, to draw as their curves."""
    losses = {record.get("loss") for record in kept}
    for metric in CURVES:
        if all(metric in record.get("history", {}) for record in kept):
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
    return ", ".join(f"{name} {stats.fmt_seconds(part['wall_seconds'])}" if part["status"] == "complete"
                     else f"{name} {part['status']} ({stats.fmt_seconds(part['wall_seconds'])})"
                     for name, part in meta.get("parts", {}).items()) or meta["status"]


def compare(metas, out, stem, current=None):
    """One curve per run (validation accuracy, or loss for the autoencoder) in OUT/plots/STEM.png
    and a table in OUT/results/STEM.md; returns the table."""
    kept = [records.record_of(meta) for meta in metas]
    for meta, record in zip(metas, kept):
        if not record.get("history"):
            raise LabError(f"run {meta['name']} has not finished an epoch yet; nothing to compare")
    metric = curve_metric(kept)
    rows = ["| run | differing flags | final validation " + metric[4:] + " | test accuracy | epochs "
            "| parts: wall time (status) | run status |", "|---|---|---:|---:|---:|---|---|"]
    curves = []
    labels, legend_title = legend_labels(metas)
    for meta, record, text in zip(metas, kept, labels):
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


# Their L2 studies compared


def studies(metas, out, stem, current=None):
    """The studies of ``metas``, per factor and pooled, in OUT/results/STEM.json and .md and
    OUT/plots/STEM.png; returns the Markdown ("" when no run made one)."""
    made = [(meta, study) for meta in metas if (study := records.record_of(meta, l2_study.NAME))]
    if not made:
        return ""
    labels, legend_title = legend_labels([meta for meta, _ in made])
    environment = records.record_of(made[-1][0]).get("environment", {})
    summary = {"runs": [summarise_run(meta, study) for meta, study in made],
               "workers": made[-1][1].get("workers", 1),
               "machine": f"{environment.get('cpu', 'this machine')}, {environment.get('cores', '?')} cores"}
    l2_study.plot_study_runs([(text, study["rows"], meta["name"] == current) for (meta, study), text in zip(made, labels)],
                             os.path.join(out, "plots", f"{stem}.png"),
                             f"Question 2D across {plots.plural(len(made), 'run')}: final validation accuracy",
                             legend_title)
    table = format_runs_table(summary)
    files.write_json(os.path.join(out, "results", f"{stem}.json"), summary)
    files.write_text(os.path.join(out, "results", f"{stem}.md"), table)
    return table


def read_runs_summary(path):
    """The JSON summary ``studies`` wrote at ``path``, checked; {} if there is none."""
    return read_checked(path, RUNS_SUMMARY, required=("runs",))


def summarise_run(meta, study):
    """One run's study as a comparison keeps it: each factor's mean and std, all its trials'."""
    trials = l2_study.all_trials(study["rows"])
    pooled = stats.mean_std(trials) if len(trials) > 1 else (None, None)
    return {"run": meta["name"], "changed": meta["changed"], "status": meta["status"],
            "wall_seconds": study.get("wall_seconds"),
            "factors": [{"l2": row["l2"], "mean": row["mean"], "std": row["std"]} for row in study["rows"]],
            "all_trials": {"mean": pooled[0], "std": pooled[1], "trials": len(trials)}}


def format_runs_table(summary):
    """The Markdown table of ``studies``'s summary."""
    factors = sorted({row["l2"] for entry in summary["runs"] for row in entry["factors"]})
    lines = ["| run | differing flags | " + " | ".join(f"L2 {f:g}" for f in factors)
             + " | all trials | study's wall time | run status |",
             "|---|---|" + "---:|" * (len(factors) + 1) + "---:|---|"]
    for entry in summary["runs"]:
        by_factor = {row["l2"]: row for row in entry["factors"]}
        cells = [l2_study.mean_std_text(by_factor.get(f, {}).get("mean"), by_factor.get(f, {}).get("std")) for f in factors]
        pooled = entry["all_trials"]
        cells.append(f"{l2_study.mean_std_text(pooled['mean'], pooled['std'])} ({pooled['trials']})"
                     if pooled["mean"] is not None else "–")
        lines.append(f"| {entry['run']} | {label(entry['changed'])} | " + " | ".join(cells)
                     + f" | {stats.fmt_seconds(entry['wall_seconds'])} | {entry['status']} |")
    return "\n".join(lines) + ("\n\nMean ± standard deviation of the final validation accuracy over "
                               "each factor's replicates, and over all the run's trials together "
                               "(their number in brackets). Wall time: the study's trials, "
                               f"{summary['workers']} at a time, on {summary['machine']}.\n")
