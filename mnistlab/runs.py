"""Runs: a lab script's run in its own folder (``Run``), going on after a stop, once complete
published to OUT/plots and OUT/results and compared with the latest runs, each labelled by the
flags and code it differs by; and the runs command.

    python -m mnistlab.runs [--out DIR]                        # DIR/runs, newest first
    python -m mnistlab.runs compare [--out DIR] RUN [RUN ...]   # those runs (a unique prefix will do)
"""

from mnistlab import cli

PROG = "python -m mnistlab.runs"
if __name__ == "__main__":
    cli.from_now(PROG)  # before the comparison's libraries load

import datetime  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402

from mnistlab import l2_study, lab, plots, records  # noqa: E402
from mnistlab.cli import LabError  # noqa: E402
from mnistlab.records import fmt_seconds, percent  # noqa: E402

LATEST = 8  # runs in each automatic comparison
CURVES = ("val_accuracy", "val_loss")  # what a comparison draws, the first that every run has
EDITED = "edited "  # how a run's label names the definitions of its script edited
# What ``studies``'s JSON holds: each run's study, per factor and over all its trials.
RUNS_SUMMARY = {"workers": int, "machine": str, "runs": records.ListOf(records.every({
    "run": str, "changed": records.ListOf(str), "status": str, "wall_seconds": records.OPTIONAL_NUMBER,
    "factors": records.ListOf(records.every({"l2": records.NUMBER, "mean": records.OPTIONAL_NUMBER,
                                             "std": records.OPTIONAL_NUMBER})),
    "all_trials": records.every({"mean": records.OPTIONAL_NUMBER, "std": records.OPTIONAL_NUMBER, "trials": int})}))}

def folder_name(script, changed, when):
    """``script-YYYYmmdd-HHMMSS-flags``: ``lr 0.05`` becomes ``lr0.05``, ``model improved``
    ``model-improved``, ``l2 1e-06 0.001`` ``l2_1e-06,0.001``."""
    tokens = []
    for flag in changed:
        name, _, value = flag.partition(" ")
        value = value.replace(" ", ",")
        joiner = "_" if name[-1].isdigit() else ("" if value[:1].isdigit() or value[:1] == "." else "-")
        tokens.append(re.sub(r"[^A-Za-z0-9.,_+-]", "", name + (joiner + value if value else "")))
    return "-".join([script, when.strftime("%Y%m%d-%H%M%S"), *tokens])[:120]

def settings(values):  # what a run computes
    return {key: value for key, value in values.items() if key not in lab.NOT_SETTINGS}

class Run:
    """The run of ``script``: the newest ``earlier`` one stopped with these settings and this known
    code, else a new one, written once entered; complete, published and compared."""

    def __init__(self, script, args, earlier, fingerprint):
        self.script, self.out, self.earlier, self.args = script, args.out, earlier, args
        values, self.meta, self.finished = settings(vars(args)), None, False  # finished: all but published
        for meta in reversed(earlier):
            if meta["script"] != script or meta["status"] == "complete" or settings(meta.get("settings", {})) != values:
                continue
            if records.alive(meta):
                print(f"Run {meta['name']} of these settings still runs (process {meta['pid']}); not resuming it", flush=True)
                continue
            why = records.changed_since(meta.get("code"), fingerprint, f"{script}.py")
            if why:
                print(f"Not resuming run {meta['name']}: {why}; starting a new run", flush=True)
                break
            self.finished = meta["status"] == records.UNPUBLISHED
            print(f"Run {meta['name']} finished earlier; publishing it, nothing trained again" if self.finished
                  else f"Resuming run {meta['name']} ({meta['status']})", flush=True)
            self.meta = {key: value for key, value in meta.items() if key not in ("path", "name")}
            self.root = meta["path"]
            break
        if self.meta is None:
            now = datetime.datetime.now()
            self.root = os.path.join(args.out, "runs", folder_name(script, args.changed, now))
            while os.path.exists(self.root):  # two runs in the same second
                self.root += "+"
            self.meta = {"format": records.FORMAT, "script": script, "changed": args.changed, "settings": values,
                         **({"code": fingerprint} if fingerprint else {}),
                         "started": now.isoformat(timespec="seconds"), "wall_seconds": 0.0, "parts": {}}
        self.name = os.path.basename(self.root)
        self.plots, self.results = os.path.join(self.root, "plots"), os.path.join(self.root, "results")

    def named(self):  # mlp_mnist-20261206-101500-lr0.05 (lr 0.05)
        return f"{self.name} ({label(self.meta['changed'])})"

    def plot(self, name):
        return os.path.join(self.plots, name)

    def result(self, name):
        return os.path.join(self.results, name)

    def __enter__(self):
        for folder in (self.plots, self.results):
            os.makedirs(folder, exist_ok=True)
        self.meta.setdefault("records", [])
        self.current, self.clock = None, records.Stopwatch()  # the part in progress
        self._save(status="running", **records.this_process())
        return self

    def part(self, name, work, *args):
        """``work(*args)`` as the part ``name`` unless finished earlier; inside another's, it names it."""
        cli.raise_pending()
        earlier = self.meta["parts"].get(name, {})
        if earlier.get("status") == "complete":
            if not self.finished:
                print(f"{name}: finished in an earlier session of this run ({fmt_seconds(earlier['wall_seconds'])}); "
                      "not trained again", flush=True)
            return None
        if earlier:
            print(f"{name}: going on where it stopped", flush=True)
        outer, self.current, clock, spent = self.current, name, records.Stopwatch(), earlier.get("wall_seconds", 0.0)
        entry = self.meta["parts"][name] = {"status": "running", "wall_seconds": spent,
                                            "records": earlier.get("records", []), **({"within": outer} if outer else {})}
        self._save()
        try:
            value = work(*args)
        except BaseException:
            entry.update(status=self._where_stopped(entry), wall_seconds=round(spent + clock.seconds(), 1))
            raise
        entry.update(status="complete", wall_seconds=round(spent + clock.seconds(), 1))
        self.current = outer
        for record in entry["records"]:  # its fits are past resuming
            shutil.rmtree(self.backup(record), ignore_errors=True)
        self._save()
        return value

    def _where_stopped(self, entry):  # at the epoch of the part's first record not complete
        for name in entry["records"]:
            record = self.read_record(name)
            if record.get("status") != "complete" and record.get("history"):
                return f"interrupted at epoch {len(next(iter(record['history'].values()))) + 1}"
        return "interrupted"

    def write_record(self, name, record):
        """Write JSON record ``name``, one of the run's and of the part's, naming the run and its flags; returns it."""
        for names in (self.meta["records"], self.meta["parts"][self.current]["records"] if self.current else []):
            if name not in names:
                names.append(name)
        self._save()
        record = {"format": records.FORMAT, "run": self.name, "config": vars(self.args), **record}
        records.write_json(self.result(f"{name}.json"), record)
        return record

    def read_record(self, name):
        return records.read(self.result(f"{name}.json"))

    def state(self, name):
        """A folder for what an unfinished part goes on from; gone once the run completes."""
        folder = os.path.join(self.root, "state", name)
        os.makedirs(folder, exist_ok=True)
        return folder

    def backup(self, name):  # the training backup of record ``name``'s fit
        return os.path.join(self.root, "state", "backup", name)

    def _save(self, **changes):
        self.meta.update(changes)
        records.write_json(os.path.join(self.root, "run.json"), self.meta)

    def __exit__(self, kind, error, traceback):
        wall = round(self.meta["wall_seconds"] + self.clock.seconds(), 1)
        if kind is not None:
            stopped = self.current and self.meta["parts"][self.current]["status"]
            where = f" in {self.current}{stopped[len('interrupted'):]}" if stopped else ""
            self._save(status="interrupted" + where, pid=None, pid_started=None, wall_seconds=wall)
            return False
        shutil.rmtree(os.path.join(self.root, "state"), ignore_errors=True)
        self._save(status=records.UNPUBLISHED, wall_seconds=wall)  # complete once published, whatever stops it
        complete = {**self.meta, "status": "complete", "pid": None, "pid_started": None}
        self._publish(complete)
        metas = sorted([*(m for m in self.earlier if m["script"] == self.script and m["name"] != self.name
                          and records.record_of(m)), {**complete, "path": self.root, "name": self.name}],
                       key=lambda m: (m["started"], m["name"]))
        runs_and_studies(metas[-LATEST:], self.out, f"{self.script}_runs", f"{l2_study.NAME}_runs", self.name)
        self._save(**complete)
        print(f"Compared with earlier runs: {self.out}/plots/{self.script}_runs.png, "
              f"{self.out}/results/{self.script}_runs.md")
        return False

    def _publish(self, complete):
        for record in self.meta["records"]:  # the run that made each record, beside it
            records.write_json(os.path.join(self.out, "results", f"{record}_run.json"), {**complete, "name": self.name})
        for kind in ("plots", "results"):
            records.remove_temporaries(os.path.join(self.out, kind))
            for name in sorted(n for n in os.listdir(os.path.join(self.root, kind)) if not records.TEMPORARY.search(n)):
                records.write_atomic(os.path.join(self.out, kind, name),
                                     lambda tmp: shutil.copyfile(os.path.join(self.root, kind, name), tmp))
        print(f"Run {self.name} complete; its figures and numbers are also in {self.out}/plots "
              f"and {self.out}/results", flush=True)

# Runs compared

def label(changed):
    return ", ".join(changed) if changed else "lab defaults"

def legend_labels(metas):
    """Each run's flags less those all share, and a title naming the shared ones."""
    shared = [flag for flag in metas[0]["changed"] if all(flag in m["changed"] for m in metas)] if len(metas) > 1 else []
    labels = [label([flag for flag in m["changed"] if flag not in shared]) if shared else label(m["changed"])
              for m in metas]
    labels = [("no other flag" if shared and text == "lab defaults" else text) for text in labels]
    edited = any(flag.startswith(EDITED) for m in metas for flag in m["changed"])
    return labels, (("flags and code" if edited else "flags") + " that differ from the lab's"
                    + (f" (all runs: {label(shared)})" if shared else ""))

def with_edits(metas):
    """``metas`` (oldest first), each ``changed`` naming its script's definitions edited since the first."""
    first = {}
    for meta in metas:
        first.setdefault(meta["script"], meta)
    return [{**meta, "changed": [*meta["changed"], *(
        [f"{EDITED}{', '.join(edits)}"] if (edits := records.edited(first[meta["script"]].get("code"), meta.get("code")))
        else [])]} for meta in metas]

def runs_and_studies(metas, out, stem, study_stem, current=None):
    """``compare`` the runs in STEM and ``studies`` in STUDY_STEM; returns both tables."""
    metas = with_edits(metas)
    return compare(metas, out, stem, current), studies(metas, out, study_stem, current)

def fmt_metric(metric, value):
    return percent(value) if "accuracy" in metric else "–" if value is None else f"{value:.4f}"

def fmt_parts(meta):  # lab MLP 12 s, L2 study interrupted (80 s)
    return ", ".join(f"{name} {fmt_seconds(part['wall_seconds'])}" if part["status"] == "complete"
                     else f"{name} {part['status']} ({fmt_seconds(part['wall_seconds'])})"
                     for name, part in meta.get("parts", {}).items()) or meta["status"]

def compare(metas, out, stem, current=None):
    """A curve per run in OUT/plots/STEM.png and a table in OUT/results/STEM.md; returns the table."""
    kept = [records.record_of(meta) for meta in metas]
    for meta, record in zip(metas, kept):
        if not record.get("history"):
            raise LabError(f"run {meta['name']} has not finished an epoch yet; nothing to compare")
    losses = {record.get("loss") for record in kept}  # one axis cannot hold two kinds of loss
    metric = next((m for m in CURVES if all(m in r.get("history", {}) for r in kept)
                   and (m != "val_loss" or len(losses) == 1)), None)
    if metric is None:
        raise LabError("these runs record different kinds of curves (accuracy, or losses of other kinds); "
                       "compare runs of one script at a time")
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
    records.write_text(os.path.join(out, "results", f"{stem}.md"), table)
    return table

def studies(metas, out, stem, current=None):
    """The L2 studies of ``metas`` in OUT/results/STEM.json and .md and OUT/plots/STEM.png; their table."""
    made = [(meta, study) for meta in metas if (study := records.record_of(meta, l2_study.NAME))]
    if not made:
        return ""
    labels, legend_title = legend_labels([meta for meta, _ in made])
    environment = records.record_of(made[-1][0]).get("environment", {})
    summary = {"runs": [], "workers": made[-1][1].get("workers", 1),
               "machine": f"{environment.get('cpu', 'this machine')}, {environment.get('cores', '?')} cores"}
    for meta, study in made:
        trials = l2_study.all_trials(study["rows"])
        pooled = records.mean_std(trials) if len(trials) > 1 else (None, None)
        summary["runs"].append({
            "run": meta["name"], "changed": meta["changed"], "status": meta["status"],
            "wall_seconds": study.get("wall_seconds"),
            "factors": [{"l2": row["l2"], "mean": row["mean"], "std": row["std"]} for row in study["rows"]],
            "all_trials": {"mean": pooled[0], "std": pooled[1], "trials": len(trials)}})
    l2_study.plot_study_runs([(text, study["rows"], meta["name"] == current) for (meta, study), text in zip(made, labels)],
                             os.path.join(out, "plots", f"{stem}.png"),
                             f"Question 2D across {plots.plural(len(made), 'run')}: final validation accuracy",
                             legend_title)
    table = format_runs_table(summary)
    records.write_json(os.path.join(out, "results", f"{stem}.json"), summary)
    records.write_text(os.path.join(out, "results", f"{stem}.md"), table)
    return table

def format_runs_table(summary):
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
                     + f" | {fmt_seconds(entry['wall_seconds'])} | {entry['status']} |")
    return "\n".join(lines) + ("\n\nMean ± standard deviation of the final validation accuracy over "
                               "each factor's replicates, and over all the run's trials together "
                               "(their number in brackets). Wall time: the study's trials, "
                               f"{summary['workers']} at a time, on {summary['machine']}.\n")

# The runs command

def find(metas, prefix, out):
    matches = [meta for meta in metas if meta["name"].startswith(prefix)]
    exact = [meta for meta in matches if meta["name"] == prefix]
    if len(matches) == 1 or exact:
        return (exact or matches)[0]
    if not matches:
        raise LabError(f"no run named {prefix!r} in {os.path.join(out, 'runs')}; "
                       "list them with python -m mnistlab.runs --out " + out)
    raise LabError(f"{prefix!r} matches {len(matches)} runs ({', '.join(m['name'] for m in matches[:3])}"
                   f"{', ...' if len(matches) > 3 else ''}); give more of the name")

def main(argv=None):
    parser = cli.LabParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", metavar="DIR", default=".", help="the folder whose runs/ to read "
                        "(default: this folder, as the scripts; ./quick for --quick runs)")
    parser.add_argument("command", nargs="?", choices=["list", "compare"], default="list",
                        help="list the runs (default), or compare the RUNs named")
    parser.add_argument("run", nargs="*", metavar="RUN", help="runs to compare: folder names or unique prefixes")
    args = parser.parse_intermixed_args(argv)  # --out may come before or after the runs
    if args.command == "compare" and not args.run:
        parser.error("compare needs at least one RUN")
    if args.command == "list" and args.run:
        parser.error(f"unexpected {args.run[0]!r}; did you mean: compare {' '.join(args.run)}")
    metas = records.all_runs(args.out)
    if not metas:
        raise LabError(f"no runs in {os.path.join(args.out, 'runs')}; run a lab script first "
                       "(python mlp_mnist.py), or pass --out to the folder it wrote to")
    if args.command == "list":
        for meta in reversed(with_edits(metas)):
            history = records.record_of(meta).get("history", {})
            metric = next((m for m in CURVES if m in history), None)
            final = (f"final {metric.replace('_', ' ')} {fmt_metric(metric, history[metric][-1])}" if metric
                     else "no epoch yet")
            print(f"{meta['name']}  [{label(meta['changed'])}]  {meta['status']}  {final}  "
                  f"{fmt_seconds(meta.get('wall_seconds'))}  ({fmt_parts(meta)})")
        return 0
    chosen = {meta["name"]: meta for meta in (find(metas, prefix, args.out) for prefix in args.run)}
    chosen = sorted(chosen.values(), key=lambda m: (m["started"], m["name"]))
    records.check_outputs(args.out)
    table, study = runs_and_studies(chosen, args.out, "runs_compare", "runs_compare_l2_study")
    print(table, study, sep="\n")
    print(f"Wrote {args.out}/plots/runs_compare.png and {args.out}/results/runs_compare.md"
          + (f", and the studies' {args.out}/plots/runs_compare_l2_study.png and .md" if study else ""))
    return 0

if __name__ == "__main__":
    cli.exit_command(main, None, prog=PROG)
