"""Every run of a lab script in its own folder under OUT/runs/, resumable, and compared.

A run writes its figures, its JSON records and its models into
``OUT/runs/<script>-<date>-<time>-<flags that differ from the lab's defaults>/``; when it
completes, they are copied to ``OUT/plots`` and ``OUT/results`` (the latest completed run of
each script, as REPORT.md reads them), and the script's runs are compared in
``OUT/plots/<script>_runs.png`` and ``OUT/results/<script>_runs.md``. Rerunning the command
of an interrupted run goes on in that run's folder.

    python -m mnistlab.runs [--out DIR]                        # DIR/runs, newest first
    python -m mnistlab.runs compare [--out DIR] RUN [RUN ...]   # those runs (a unique prefix will do)
"""

import datetime
import os
import re
import shutil
import sys

from mnistlab import cli, lab, results
from mnistlab.errors import LabError

PROG = "python -m mnistlab.runs"
LATEST = 8  # runs in each automatic comparison
NOT_SETTINGS = ("out", "workers", "changed")  # where a run writes and on how many cores: not what it computes
STUDY = "mlp_l2_study"  # the record of question 2D's study, in the runs that made one


# Naming and finding runs


def label(changed):
    """The flags a run differs by, as a table reads them."""
    return ", ".join(changed) if changed else "lab defaults"


def legend_labels(metas):
    """Each run's flags less those every compared run shares, and the shared ones, for a
    legend that shows at a glance what tells the runs apart."""
    shared = [flag for flag in metas[0]["changed"] if all(flag in m["changed"] for m in metas)] \
        if len(metas) > 1 else []
    labels = [label([flag for flag in m["changed"] if flag not in shared]) if shared else label(m["changed"])
              for m in metas]
    labels = [("no other flag" if shared and text == "lab defaults" else text) for text in labels]
    title = "flags that differ from the lab's" + (f" (all runs: {label(shared)})" if shared else "")
    return labels, title


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


def settings(args):
    """What a run computes: its flags after defaults, less where it writes and how many cores."""
    return {key: value for key, value in vars(args).items() if key not in NOT_SETTINGS}


def runs_folder(out):
    return os.path.join(out, "runs")


def read_meta(path):
    """A run folder's run.json; a hand-edited or truncated one is refused by name."""
    meta = results.read_record(os.path.join(path, "run.json"), results.RUN_FIELDS,
                               required=("script", "status", "started"))
    if meta:
        meta.setdefault("changed", [])
        meta["path"] = path
        meta["name"] = os.path.basename(path)
    return meta or None


def all_runs(out):
    """Every run under OUT/runs, oldest first."""
    folder = runs_folder(out)
    if not os.path.isdir(folder):
        return []
    found = [read_meta(os.path.join(folder, name)) for name in sorted(os.listdir(folder))
             if os.path.isdir(os.path.join(folder, name))]
    return sorted((meta for meta in found if meta), key=lambda meta: (meta["started"], meta["name"]))


def _alive(pid):
    """Whether process ``pid`` still runs (a run marked running may have been killed)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would send Ctrl-C to a process group there
        return _alive_on_windows(pid)
    try:
        os.kill(pid, 0)
    except PermissionError:  # it exists, as another user's process
        return True
    except OSError:
        return False
    return True


def _alive_on_windows(pid):
    import ctypes

    kernel32 = ctypes.windll.kernel32
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return False
    try:
        code = ctypes.c_ulong()
        return bool(kernel32.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


# One run


class Run(cli.Outputs):
    """The folder of one run of ``script``; ``with`` it around the run's work.

    On success the run's files are published to OUT/plots and OUT/results and the script's
    runs compared; on an interruption or an error the run is marked interrupted, so that the
    same command goes on in this folder.
    """

    def __init__(self, script, args):
        self.script, self.out, self.changed = script, args.out, args.changed
        self.settings = settings(args)
        cli.Outputs(args.out)  # OUT itself must be writable before anything is made
        previous = self._interrupted_run()
        if previous:
            path, self.meta = previous["path"], previous
            status = "its process was killed" if previous["status"] == "running" else previous["status"]
            print(f"Resuming run {previous['name']} ({status})", flush=True)
        else:
            now = datetime.datetime.now()
            path = os.path.join(runs_folder(args.out), folder_name(script, self.changed, now))
            while os.path.exists(path):  # two runs in the same second
                path += "+"
            self.meta = {"script": script, "changed": self.changed, "settings": self.settings,
                         "started": now.isoformat(timespec="seconds"), "wall_seconds": 0.0}
        super().__init__(path)
        self.name = os.path.basename(path)
        self.records = []  # the JSON records the run writes, its main one first
        self.clock = results.Stopwatch()
        self._save(status="running", pid=os.getpid())

    def _interrupted_run(self):
        """The newest unfinished run of this script with these settings, not running elsewhere."""
        for meta in reversed(all_runs(self.out)):
            if (meta["script"] == self.script and meta["status"] != "complete"
                    and meta.get("settings") == self.settings
                    and not (meta["status"] == "running" and _alive(meta.get("pid")))):
                return meta
        return None

    def record(self, name):
        """The path of JSON record ``name``, noted as one of the run's records (its main one first)."""
        if name not in self.records:
            self.records.append(name)
            self._save(records=self.records)
        return self.result(f"{name}.json")

    def backup(self, name):
        """Where Keras's BackupAndRestore keeps the training state of record ``name``."""
        return os.path.join(self.root, "backup", name)

    def drop_backup(self, name):
        shutil.rmtree(self.backup(name), ignore_errors=True)
        folder = os.path.dirname(self.backup(name))
        if os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)

    def _save(self, **changes):
        self.meta.update(changes)
        stored = {key: value for key, value in self.meta.items() if key not in ("path", "name")}
        results.write_json(os.path.join(self.root, "run.json"), stored)

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        wall = round(self.meta["wall_seconds"] + self.clock.seconds(), 1)
        if kind is None:
            self._save(status="complete", pid=None, wall_seconds=wall, records=self.records)
            self._publish()
            compare_latest(self.out, self.script, self.name)
        else:
            self._save(status=self._where_stopped(), pid=None, wall_seconds=wall, records=self.records)
        return False

    def _where_stopped(self):
        """``interrupted at epoch k`` of the first record not complete."""
        for name in self.records:
            record = results.read_record(self.result(f"{name}.json"))
            if record.get("status") != "complete":
                done = len(next(iter(record.get("history", {}).values()), []))
                return f"interrupted at epoch {done + 1}" + ("" if name == self.records[0] else f" of {name}")
        return "interrupted"

    def _publish(self):
        """Copy the run's figures and numbers to OUT/plots and OUT/results, each file in one step."""
        for kind in ("plots", "results"):
            target = os.path.join(self.out, kind)
            for name in sorted(os.listdir(os.path.join(self.root, kind))):
                source = os.path.join(self.root, kind, name)
                results.write_atomic(os.path.join(target, name),
                                     lambda tmp, source=source: shutil.copyfile(source, tmp))
        print(f"Run {self.name} complete; its figures and numbers are also in {self.out}/plots "
              f"and {self.out}/results", flush=True)


def start(script, args):
    return Run(script, args)


# Comparing runs


def record_of(meta, name=None):
    """A run's main record (or record ``name``), or {} when it has not written one yet."""
    name = name or (meta.get("records") or [meta["script"]])[0]
    return results.read_record(os.path.join(meta["path"], "results", f"{name}.json"))


def curve_metric(records):
    for metric in ("val_accuracy", "val_loss"):
        if all(metric in record.get("history", {}) for record in records):
            return metric
    raise LabError("these runs record different kinds of curves (accuracy and loss); "
                   "compare runs of one script at a time")


def fmt_metric(metric, value):
    if "accuracy" in metric:
        return results.percent(value)
    return "–" if value is None else f"{value:.4f}"


def fmt_seconds(seconds):
    return "–" if seconds is None else f"{seconds:,.0f} s"


def compare(metas, out, stem, study_stem, current=None):
    """One curve per run (validation accuracy, or loss for the autoencoder) in OUT/plots/STEM.png
    and a table in OUT/results/STEM.md; the same for the L2 study (STUDY_STEM) when the runs made
    one. Returns the table(s) as text, and whether the runs' studies were compared too."""
    from mnistlab import plots

    records = [record_of(meta) for meta in metas]
    for meta, record in zip(metas, records):
        if not record.get("history"):
            raise LabError(f"run {meta['name']} has not finished an epoch yet; nothing to compare")
    metric = curve_metric(records)
    rows = ["| run | differing flags | final validation " + metric[4:] + " | test accuracy | epochs "
            "| wall time | status |", "|---|---|---:|---:|---:|---:|---|"]
    curves = []
    labels, legend_title = legend_labels(metas)
    for meta, record, text in zip(metas, records, labels):
        values = record["history"][metric]
        curves.append((text, values, meta["name"] == current))
        rows.append(f"| {meta['name']} | {label(meta['changed'])} | {fmt_metric(metric, values[-1])} | "
                    f"{fmt_metric('accuracy', record.get('test_accuracy'))} | {len(values)} | "
                    f"{fmt_seconds(meta.get('wall_seconds'))} | {meta['status']} |")
    scripts = sorted({meta["script"] for meta in metas})
    script = scripts[0] if len(scripts) == 1 else " and ".join(scripts)
    plots.plot_runs(curves, metric, os.path.join(out, "plots", f"{stem}.png"),
                    f"{script}: validation {metric[4:]} per epoch, {plots.plural(len(metas), 'run')} compared",
                    legend_title)
    table = "\n".join(rows) + "\n"
    results.write_text(os.path.join(out, "results", f"{stem}.md"), table)
    studies = [(meta, study) for meta in metas if (study := record_of(meta, STUDY))]
    if studies:
        table += "\n" + compare_studies(studies, out, study_stem, current)
    return table, bool(studies)


def compare_studies(studies, out, stem, current):
    """Question 2D's study across runs: mean final validation accuracy +- std per L2 factor."""
    from mnistlab import plots

    factors = sorted({row["l2"] for _, study in studies for row in study["rows"]})
    rows = ["| run | differing flags | " + " | ".join(f"L2 {f:g}" for f in factors)
            + " | all trials | study's wall time | status |",
            "|---|---|" + "---:|" * (len(factors) + 1) + "---:|---|"]
    series = []
    labels, legend_title = legend_labels([meta for meta, _ in studies])
    for (meta, study), text in zip(studies, labels):
        by_factor = {row["l2"]: row for row in study["rows"]}
        cells = [f"{results.percent(by_factor[f]['mean'])} ± {results.percent(by_factor[f]['std'])}"
                 if by_factor.get(f, {}).get("mean") is not None else "–" for f in factors]
        trials = all_trials(study)
        mean, std = results.mean_std(trials) if len(trials) > 1 else (None, None)
        cells.append(f"{results.percent(mean)} ± {results.percent(std)} ({len(trials)})" if mean is not None else "–")
        rows.append(f"| {meta['name']} | {label(meta['changed'])} | " + " | ".join(cells)
                    + f" | {fmt_seconds(study.get('wall_seconds'))} | {meta['status']} |")
        series.append((text, study["rows"], trials, meta["name"] == current))
    env = record_of(studies[-1][0]).get("environment", {})
    machine = f"{env.get('cpu', 'this machine')}, {env.get('cores', '?')} cores"
    table = "\n".join(rows) + (f"\n\nMean ± standard deviation of the final validation accuracy over "
                               f"each factor's replicates, and over all the run's trials together "
                               f"(their number in brackets). Wall time: the study's trials, "
                               f"{studies[-1][1].get('workers', 1)} at a time, on {machine}.\n")
    plots.plot_study_runs(series, {"Hinton": lab.HINTON, "the lab report": lab.LAB_REPORT_MLP},
                          os.path.join(out, "plots", f"{stem}.png"),
                          f"Question 2D across {plots.plural(len(studies), 'run')}: "
                          "final validation accuracy", legend_title)
    results.write_text(os.path.join(out, "results", f"{stem}.md"), table)
    return table


def all_trials(study):
    """The final validation accuracy of every trial of a study, all its factors together."""
    return [accuracy for row in study["rows"] for accuracy in row.get("accuracies", []) if accuracy is not None]


def compare_latest(out, script, current):
    """After a run: compare the script's latest runs in OUT/plots and OUT/results."""
    metas = [meta for meta in all_runs(out) if meta["script"] == script and record_of(meta)][-LATEST:]
    compare(metas, out, f"{script}_runs", f"{STUDY}_runs", current)
    print(f"Compared with earlier runs: {out}/plots/{script}_runs.png, {out}/results/{script}_runs.md")


# The command line


def find(metas, prefix, out):
    matches = [meta for meta in metas if meta["name"].startswith(prefix)]
    if len(matches) == 1:
        return matches[0]
    exact = [meta for meta in matches if meta["name"] == prefix]
    if exact:
        return exact[0]
    if not matches:
        raise LabError(f"no run named {prefix!r} in {runs_folder(out)}; "
                       "list them with python -m mnistlab.runs --out " + out)
    raise LabError(f"{prefix!r} matches {len(matches)} runs ({', '.join(m['name'] for m in matches[:3])}"
                   f"{', ...' if len(matches) > 3 else ''}); give more of the name")


def describe(meta):
    record = record_of(meta)
    history = record.get("history", {})
    metric = next((m for m in ("val_accuracy", "val_loss") if m in history), None)
    final = f"final {metric.replace('_', ' ')} {fmt_metric(metric, history[metric][-1])}" if metric else "no epoch yet"
    return f"{meta['name']}  {meta['status']}  {final}  {fmt_seconds(meta.get('wall_seconds'))}"


def parse_args(argv):
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
    return args


def main(argv=None):
    args = parse_args(argv)
    metas = all_runs(args.out)
    if not metas:
        raise LabError(f"no runs in {runs_folder(args.out)}; run a lab script first "
                       "(python mlp_mnist.py), or pass --out to the folder it wrote to")
    if args.command == "list":
        for meta in reversed(metas):
            print(describe(meta))
        return 0
    chosen = [find(metas, prefix, args.out) for prefix in args.run]
    chosen = sorted({meta["name"]: meta for meta in chosen}.values(), key=lambda m: (m["started"], m["name"]))
    cli.Outputs(args.out)
    table, studies = compare(chosen, args.out, "runs_compare", "runs_compare_l2_study")
    print(table)
    print(f"Wrote {args.out}/plots/runs_compare.png and {args.out}/results/runs_compare.md"
          + (f", and the studies' {args.out}/plots/runs_compare_l2_study.png and .md" if studies else ""))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, prog=PROG))
