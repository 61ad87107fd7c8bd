"""A run of a lab script, from start to finish: its folder, its parts, its records, going on
after a stop, publishing and comparing.

A run writes everything into ``OUT/runs/<script>-<date>-<time>-<flags that differ from the lab's
defaults>/``; when it completes, its figures and numbers are copied to ``OUT/plots`` and
``OUT/results`` (the latest completed run of each script, as REPORT.md reads them), and the
script's latest runs are compared in ``OUT/plots/<script>_runs.png`` and
``OUT/results/<script>_runs.md``.

A run is made of named parts (the lab MLP, then the L2 study; the autoencoder, ...), each a
function the script hands to ``Run.part``. Rerunning the command of a stopped run goes on in its
folder: every finished part is skipped, and the unfinished one goes on from its last finished
epoch (its Keras backup) or trial (its own store of finished work).

The layout of a run folder, format ``FORMAT``:

- ``run.json``: ``format``, ``script``, ``changed`` (the flags that differ, as labels),
  ``settings`` (every flag but ``cli.NOT_SETTINGS``: a stopped run goes on only under the same
  settings), ``started`` (ISO time), ``status`` (``running``, ``complete``, or ``interrupted in
  PART[ at epoch K]``), ``pid`` (while running), ``wall_seconds`` (every session together),
  ``records`` (its JSON records, the main one first) and ``parts``: for each part in order,
  ``{"status", "wall_seconds", "records"}``. A completed run's run.json is also published as
  ``OUT/results/<main record>_run.json``.
- ``results/NAME.json``: a record. Fields, where a record has them: ``format``, ``name``,
  ``status`` (``running: K epochs done`` or ``complete``), ``config`` (the flags), ``environment``
  (machine and versions), ``history`` (a list per Keras metric, one number per epoch, null for a
  diverged epoch), ``loss`` (its Keras name), ``layers`` (``plots.layer_table``), ``examples``
  (training and test digits), ``parameters``, ``test_loss``, ``test_accuracy``,
  ``wall_seconds``, ``diverged_at_epoch``; each script adds its own (the study's ``rows``, the autoencoder's
  ``noise_levels`` and ``classifiers``). Every JSON is strict (no NaN).
- ``plots/``: the run's figures. ``state/``: what a stopped part goes on from (Keras backups,
  trained weights that later parts load); removed when the run completes.

Every record is read through ``read_record``, which refuses by name one whose fields hold
something unexpected or that a newer format wrote.

    python -m mnistlab.runs [--out DIR]                        # DIR/runs, newest first
    python -m mnistlab.runs compare [--out DIR] RUN [RUN ...]   # those runs (a unique prefix will do)
"""

import datetime
import os
import re
import shutil
import sys

from mnistlab import cli, results
from mnistlab.errors import LabError

PROG = "python -m mnistlab.runs"
FORMAT = 1  # of run.json and the records; a later layout raises it, and reads this one
LATEST = 8  # runs in each automatic comparison

# What the fields of run.json and of a record hold, where they have them.
RUN_FIELDS = {"format": int, "script": str, "status": str, "started": str, "changed": list, "records": list,
              "settings": dict, "wall_seconds": results.NUMBER, "parts": dict}
RECORD_FIELDS = {"format": int, "status": str, "test_accuracy": results.OPTIONAL_NUMBER,
                 "test_loss": results.OPTIONAL_NUMBER, "wall_seconds": results.OPTIONAL_NUMBER,
                 "parameters": int, "environment": dict, "config": dict, "layers": list, "examples": dict,
                 "loss": str,
                 "history": dict, "rows": list, "classifiers": list, "noise_levels": list, "settings": dict}
PART_FIELDS = {"status": str, "wall_seconds": results.NUMBER, "records": list}


def read_record(path, fields=RECORD_FIELDS, required=()):
    """The record (or run.json) at ``path``, checked against ``fields`` and the history's shape;
    {} if there is none. One of another form, or of a newer format, is refused by name."""
    record = results.read_checked(path, fields, required)
    if record.get("format", FORMAT) > FORMAT:
        raise LabError(f"{path} was written by a newer version of this project (format "
                       f"{record['format']}); update the project, or pass --out to another folder")
    return record


def read_backup(folder):
    """The metadata of the Keras backup in ``folder`` (the epochs it holds and its weights
    file), or None if there is none."""
    return results.read_checked(os.path.join(folder, "training_metadata.json"),
                                {"epoch": int, "batch": int, "weights": str}, required=("epoch",)) or None


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


def settings(values):
    """What a run computes: its flags after defaults (a dict), less where it reads and writes
    and how many cores it uses."""
    return {key: value for key, value in values.items() if key not in (*cli.NOT_SETTINGS, "changed")}


def runs_folder(out):
    return os.path.join(out, "runs")


def read_meta(path):
    """A run folder's run.json; a hand-edited or truncated one is refused by name."""
    meta = read_record(os.path.join(path, "run.json"), RUN_FIELDS, required=("script", "status", "started"))
    if meta:
        meta.setdefault("changed", [])
        meta.setdefault("parts", {})
        for part in meta["parts"].values():
            results.check_kinds(part, PART_FIELDS, os.path.join(path, "run.json"), what="parts")
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
    """The folder of one run of ``script``; ``with`` it around the run's parts.

    On success the run's files are published to OUT/plots and OUT/results and the script's
    latest runs compared (and, for each of ``comparisons``, ``(compare, stem)``, also
    ``compare(metas, out, stem, current)``); on a stop or an error the run is marked
    interrupted, so that the same command goes on in this folder.
    """

    def __init__(self, script, args, comparisons=()):
        self.script, self.out, self.comparisons = script, args.out, comparisons
        self.settings = settings(vars(args))
        cli.Outputs(args.out)  # OUT itself must be writable before anything is made
        previous = self._interrupted_run(args.out)
        if previous:
            path, self.meta = previous["path"], previous
            status = "its process was killed" if previous["status"] == "running" else previous["status"]
            print(f"Resuming run {previous['name']} ({status})", flush=True)
        else:
            now = datetime.datetime.now()
            path = os.path.join(runs_folder(args.out), folder_name(script, args.changed, now))
            while os.path.exists(path):  # two runs in the same second
                path += "+"
            self.meta = {"format": FORMAT, "script": script, "changed": args.changed, "settings": self.settings,
                         "started": now.isoformat(timespec="seconds"), "wall_seconds": 0.0, "parts": {}}
        super().__init__(path)
        self.name = os.path.basename(path)
        self.meta.setdefault("records", [])
        self.current = None  # the part in progress
        self.clock = results.Stopwatch()
        self._save(status="running", pid=os.getpid())

    def _interrupted_run(self, out):
        """The newest unfinished run of this script with these settings, not running elsewhere."""
        for meta in reversed(all_runs(out)):
            if (meta["script"] == self.script and meta["status"] != "complete"
                    and settings(meta.get("settings", {})) == self.settings
                    and not (meta["status"] == "running" and _alive(meta.get("pid")))):
                return meta
        return None

    # The parts

    def part(self, name, work):
        """Run ``work()`` as the part ``name`` and return what it returns; a part that finished
        in an earlier session of this run is skipped (returning None), and says so."""
        parts = self.meta["parts"]
        earlier = parts.get(name, {})
        if earlier.get("status") == "complete":
            print(f"{name}: finished in an earlier session of this run ({fmt_seconds(earlier['wall_seconds'])}); "
                  "not trained again", flush=True)
            return None
        if earlier:
            print(f"{name}: going on where it stopped", flush=True)
        self.current, clock, spent = name, results.Stopwatch(), earlier.get("wall_seconds", 0.0)
        parts[name] = {"status": "running", "wall_seconds": spent, "records": earlier.get("records", [])}
        self._save()
        try:
            value = work()
        except BaseException:
            parts[name].update(status=self._where_stopped(name), wall_seconds=round(spent + clock.seconds(), 1))
            raise
        parts[name].update(status="complete", wall_seconds=round(spent + clock.seconds(), 1))
        self.current = None
        shutil.rmtree(self.backup(""), ignore_errors=True)  # the part's fits are past resuming
        self._save()
        return value

    def _where_stopped(self, name):
        """``interrupted at epoch K`` of the part's first record not complete, else ``interrupted``."""
        for record_name in self.meta["parts"][name]["records"]:
            record = read_record(self.result(f"{record_name}.json"))
            if record.get("status") != "complete" and record.get("history"):
                return f"interrupted at epoch {len(next(iter(record['history'].values()))) + 1}"
        return "interrupted"

    # Its records and state

    def record_path(self, name):
        """The path of JSON record ``name``, noted as one of the run's records and of the part's."""
        if name not in self.meta["records"]:
            self.meta["records"].append(name)
        if self.current and name not in self.meta["parts"][self.current]["records"]:
            self.meta["parts"][self.current]["records"].append(name)
        self._save()
        return self.result(f"{name}.json")

    def write_record(self, name, record):
        """Write record ``name`` (a dict) in the run's layout; returns the record written."""
        record = {"format": FORMAT, **record}
        results.write_json(self.record_path(name), record)
        return record

    def read_record(self, name):
        return read_record(self.result(f"{name}.json"))

    def state(self, name):
        """A folder for what an unfinished part goes on from; gone once the run completes."""
        folder = os.path.join(self.root, "state", name)
        os.makedirs(folder, exist_ok=True)
        return folder

    def backup(self, name):
        """Where Keras's BackupAndRestore keeps the training state of record ``name``'s fit."""
        return os.path.join(self.root, "state", "backup", name)  # "" for the folder of all of them

    def resume_point(self, name, epochs):
        """How many epochs of record ``name``'s fit are done and their history, as a stopped fit
        goes on from them; (0, {}) for a fit to start afresh (a backup without the history of
        its epochs is dropped)."""
        metadata = read_backup(self.backup(name))
        done = metadata["epoch"] if metadata else 0
        history = self.read_record(name).get("history", {}) if done else {}
        if done and history and all(len(values) >= done for values in history.values()):
            print(f"Resuming {name} in run {self.name} after epoch {done} of {epochs}", flush=True)
            return done, {key: values[:done] for key, values in history.items()}
        shutil.rmtree(self.backup(name), ignore_errors=True)
        return 0, {}

    def _save(self, **changes):
        self.meta.update(changes)
        stored = {key: value for key, value in self.meta.items() if key not in ("path", "name")}
        results.write_json(os.path.join(self.root, "run.json"), stored)

    # Its end

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        wall = round(self.meta["wall_seconds"] + self.clock.seconds(), 1)
        if kind is None:
            shutil.rmtree(os.path.join(self.root, "state"), ignore_errors=True)
            self._save(status="complete", pid=None, wall_seconds=wall)
            self._publish()
            self._compare()
        else:
            stopped = self.current and self.meta["parts"][self.current]["status"]
            where = f" in {self.current}{stopped[len('interrupted'):]}" if stopped else ""
            self._save(status="interrupted" + where, pid=None, wall_seconds=wall)
        return False

    def _publish(self):
        """Copy the run's figures and numbers, and its run.json, to OUT/plots and OUT/results,
        each file in one step."""
        copies = [(os.path.join(self.root, "run.json"), os.path.join(self.out, "results", f"{self.meta['records'][0]}_run.json"))]
        for kind in ("plots", "results"):
            copies += [(os.path.join(self.root, kind, name), os.path.join(self.out, kind, name))
                       for name in sorted(os.listdir(os.path.join(self.root, kind)))]
        for source, target in copies:
            results.write_atomic(target, lambda tmp, source=source: shutil.copyfile(source, tmp))
        print(f"Run {self.name} complete; its figures and numbers are also in {self.out}/plots "
              f"and {self.out}/results", flush=True)

    def _compare(self):
        """Compare the script's latest runs in OUT/plots and OUT/results."""
        metas = [meta for meta in all_runs(self.out) if meta["script"] == self.script and record_of(meta)][-LATEST:]
        compare(metas, self.out, f"{self.script}_runs", self.name)
        for hook, stem in self.comparisons:
            hook(metas, self.out, stem, self.name)
        print(f"Compared with earlier runs: {self.out}/plots/{self.script}_runs.png, "
              f"{self.out}/results/{self.script}_runs.md")


# Comparing runs


def record_of(meta, name=None):
    """A run's main record (or record ``name``), or {} when it has not written one yet."""
    name = name or (meta.get("records") or [meta["script"]])[0]
    return read_record(os.path.join(meta["path"], "results", f"{name}.json"))


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


def fmt_parts(meta):
    """Each part's status and wall time: ``lab MLP 12 s, L2 study interrupted (80 s)``."""
    return ", ".join(f"{name} {fmt_seconds(part['wall_seconds'])}" if part["status"] == "complete"
                     else f"{name} {part['status']} ({fmt_seconds(part['wall_seconds'])})"
                     for name, part in meta.get("parts", {}).items()) or meta["status"]


def compare(metas, out, stem, current=None):
    """One curve per run (validation accuracy, or loss for the autoencoder) in OUT/plots/STEM.png
    and a table in OUT/results/STEM.md; returns the table."""
    from mnistlab import plots

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
    script = scripts[0] if len(scripts) == 1 else " and ".join(scripts)
    plots.plot_runs(curves, metric, os.path.join(out, "plots", f"{stem}.png"),
                    f"{script}: validation {metric[4:]} per epoch, {plots.plural(len(metas), 'run')} compared",
                    legend_title)
    table = "\n".join(rows) + "\n"
    results.write_text(os.path.join(out, "results", f"{stem}.md"), table)
    return table


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
    return f"{meta['name']}  {meta['status']}  {final}  {fmt_seconds(meta.get('wall_seconds'))}  ({fmt_parts(meta)})"


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
    from mnistlab import l2_study  # the one script's part with a comparison of its own

    print(compare(chosen, args.out, "runs_compare"))
    study = l2_study.compare_runs(chosen, args.out, "runs_compare_l2_study")
    print(study)
    print(f"Wrote {args.out}/plots/runs_compare.png and {args.out}/results/runs_compare.md"
          + (f", and the studies' {args.out}/plots/runs_compare_l2_study.png and .md" if study else ""))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, prog=PROG))
