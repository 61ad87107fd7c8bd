"""One run of a lab script: its folder, its named parts, going on after a stop, and publishing
its results (the layout of what it writes: ``records``).

A run writes everything into ``OUT/runs/<script>-<date>-<time>-<flags that differ from the lab's
defaults>/``; when it completes, its figures and numbers are copied to ``OUT/plots`` and
``OUT/results`` (the latest completed run of each script, as REPORT.md reads them).

A run is made of named parts (the lab MLP, then the L2 study; the autoencoder, ...), each a
function the script hands to ``Run.part``. Rerunning the command of a stopped run goes on in its
folder: every finished part is skipped, and the unfinished one goes on from its last finished
epoch (its Keras backup, ``Run.checkpoint``) or trial (its own store of finished work).
"""

import dataclasses
import datetime
import os
import re
import shutil
import tempfile

from mnistlab import code, files, flags, records, stats, stops
from mnistlab.errors import LabError


class Outputs:
    """A folder's plots/ and results/, checked writable before any training starts."""

    def __init__(self, root):
        self.root = root
        self.plots = os.path.join(root, "plots")
        self.results = os.path.join(root, "results")
        for folder in (self.plots, self.results):
            try:
                os.makedirs(folder, exist_ok=True)
                with tempfile.TemporaryFile(dir=folder):
                    pass
            except OSError as exc:
                raise LabError(f"cannot write to {folder} ({exc.strerror}); pass --out to a writable folder")

    def plot(self, name):
        return os.path.join(self.plots, name)

    def result(self, name):
        return os.path.join(self.results, name)


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
    edited = any(flag.startswith(EDITED) for m in metas for flag in m["changed"])
    title = (("flags and code" if edited else "flags") + " that differ from the lab's"
             + (f" (all runs: {label(shared)})" if shared else ""))
    return labels, title


EDITED = "edited "  # how a run's label names the definitions of its script edited


def with_edits(metas):
    """``metas`` (oldest first), each run's ``changed`` also naming the definitions of its script
    edited since the first of them of that script: runs with the same flags but another model
    are told apart."""
    first = {}
    for meta in metas:
        first.setdefault(meta["script"], meta)
    return [{**meta, "changed": [*meta["changed"], *(
        [f"{EDITED}{', '.join(edits)}"] if (edits := code.edited(first[meta["script"]].get("code"), meta.get("code")))
        else [])]} for meta in metas]


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
    return {key: value for key, value in values.items() if key not in (*flags.NOT_SETTINGS, "changed")}


def runs_folder(out):
    return os.path.join(out, "runs")


def read_meta(path):
    """A run folder's run.json; a hand-edited or truncated one is refused by name."""
    meta = records.read_record(os.path.join(path, "run.json"), records.RUN_FIELDS,
                               required=("script", "status", "started"))
    if meta:
        meta.setdefault("changed", [])
        meta.setdefault("parts", {})
        meta["path"] = path
        meta["name"] = os.path.basename(path)
        if meta["status"] == "running" and not alive(meta.get("pid")):  # killed before it could say so
            meta["status"] = KILLED
            for part in meta["parts"].values():
                if part["status"] == "running":
                    part["status"] = "killed"
    return meta or None


KILLED = "killed (its process is gone; rerun its command to go on)"


def all_runs(out):
    """Every run under OUT/runs, oldest first."""
    folder = runs_folder(out)
    if not os.path.isdir(folder):
        return []
    found = [read_meta(os.path.join(folder, name)) for name in sorted(os.listdir(folder))
             if os.path.isdir(os.path.join(folder, name))]
    return sorted((meta for meta in found if meta), key=lambda meta: (meta["started"], meta["name"]))


def record_of(meta, name=None):
    """A run's main record (or record ``name``), or {} when it has not written one yet."""
    name = name or (meta.get("records") or [meta["script"]])[0]
    return records.read_record(os.path.join(meta["path"], "results", f"{name}.json"))


def alive(pid):
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


def fmt_seconds(seconds):
    return "–" if seconds is None else f"{seconds:,.0f} s"


@dataclasses.dataclass
class Checkpoint:
    """Where the fit of one record stands: the epochs done and their history (a stopped fit goes
    on from them), the folder of its Keras backup, ``save(history)``, which records the history
    so far after each epoch, and what the record says from the start (``records.first_fields``)."""
    done: int
    history: dict
    folder: str
    save: object
    first: dict
    clock: stats.Stopwatch = dataclasses.field(default_factory=stats.Stopwatch)

    def record(self, model, history, scores, *, examples, layers):
        """The finished fit's record (``records.fit_record``), timed from this checkpoint."""
        return records.fit_record(self.first, model, history, scores, examples=examples, layers=layers,
                                  wall_seconds=self.clock.seconds())


# One run


class Run(Outputs):
    """The folder of one run of ``script``; ``with`` it around the run's parts.

    On success the run's files are published to OUT/plots and OUT/results and each of ``after``
    is called with the run; on a stop or an error the run is marked interrupted, so that the
    same command goes on in this folder.
    """

    def __init__(self, script, args, after=()):
        self.script, self.out, self.after = script, args.out, after
        self.settings = settings(vars(args))
        self.code = code.fingerprint(script)
        Outputs(args.out)  # OUT itself must be writable before anything is made
        previous = self._interrupted_run(args.out)
        if previous:
            path, self.meta = previous["path"], previous
            print(f"Resuming run {previous['name']} ({previous['status']})", flush=True)
        else:
            now = datetime.datetime.now()
            path = os.path.join(runs_folder(args.out), folder_name(script, args.changed, now))
            while os.path.exists(path):  # two runs in the same second
                path += "+"
            self.meta = {"format": records.FORMAT, "script": script, "changed": args.changed,
                         "settings": self.settings, **({"code": self.code} if self.code else {}),
                         "started": now.isoformat(timespec="seconds"), "wall_seconds": 0.0, "parts": {}}
        super().__init__(path)
        self.name = os.path.basename(path)
        self.meta.setdefault("records", [])
        self.current = None  # the part in progress
        self.clock = stats.Stopwatch()
        self._save(status="running", pid=os.getpid())

    def _interrupted_run(self, out):
        """The newest unfinished run of this script with these settings, not running elsewhere,
        if its code is this one's; a run whose script has been edited since is named and left."""
        for meta in reversed(all_runs(out)):
            if (meta["script"] == self.script and meta["status"] != "complete"
                    and settings(meta.get("settings", {})) == self.settings
                    and not (meta["status"] == "running" and alive(meta.get("pid")))):
                changed = code.edited(meta.get("code"), self.code)
                if not changed:
                    return meta
                print(f"Not resuming run {meta['name']}: {self.code['file']} has changed since it stopped "
                      f"({', '.join(changed)}); starting a new run", flush=True)
                return None
        return None

    # The parts

    def part(self, name, work, *args):
        """Run ``work(*args)`` as the part ``name`` and return what it returns; a part that
        finished in an earlier session of this run is skipped (returning None), and says so."""
        stops.raise_pending()
        parts = self.meta["parts"]
        earlier = parts.get(name, {})
        if earlier.get("status") == "complete":
            print(f"{name}: finished in an earlier session of this run ({fmt_seconds(earlier['wall_seconds'])}); "
                  "not trained again", flush=True)
            return None
        if earlier:
            print(f"{name}: going on where it stopped", flush=True)
        self.current, clock, spent = name, stats.Stopwatch(), earlier.get("wall_seconds", 0.0)
        parts[name] = {"status": "running", "wall_seconds": spent, "records": earlier.get("records", [])}
        self._save()
        try:
            value = work(*args)
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
            record = self.read_record(record_name)
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
        """Write record ``name`` (a dict); returns the record written."""
        return records.write_record(self.record_path(name), record)

    def update_record(self, name, fields):
        """Record ``name`` with ``fields`` added; returns it."""
        return self.write_record(name, {**self.read_record(name), **fields})

    def read_record(self, name):
        return records.read_record(self.result(f"{name}.json"))

    def state(self, name):
        """A folder for what an unfinished part goes on from; gone once the run completes."""
        folder = os.path.join(self.root, "state", name)
        os.makedirs(folder, exist_ok=True)
        return folder

    def backup(self, name):
        """Where Keras's BackupAndRestore keeps the training state of record ``name``'s fit."""
        return os.path.join(self.root, "state", "backup", name)  # "" for the folder of all of them

    def checkpoint(self, name, args):
        """The ``Checkpoint`` of record ``name``'s fit of ``args.epochs``, whose progress is
        recorded with the flags ``args`` and its history so far. A backup without the history of
        its epochs is dropped, and the fit starts afresh."""
        epochs, first = args.epochs, records.first_fields(name, args)
        metadata = records.read_backup(self.backup(name))
        done = metadata["epoch"] if metadata else 0
        history = self.read_record(name).get("history", {}) if done else {}
        if done and history and all(len(values) >= done for values in history.values()):
            print(f"Resuming {name} in run {self.name} after epoch {done} of {epochs}", flush=True)
            history = {key: values[:done] for key, values in history.items()}
        else:
            shutil.rmtree(self.backup(name), ignore_errors=True)
            done, history = 0, {}

        def save(history):
            self.write_record(name, {**first, "status": f"running: {len(history)} epochs done", "history": history})
        return Checkpoint(done, history, self.backup(name), save, first)

    def _save(self, **changes):
        self.meta.update(changes)
        stored = {key: value for key, value in self.meta.items() if key not in ("path", "name")}
        files.write_json(os.path.join(self.root, "run.json"), stored)

    # Its end

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        wall = round(self.meta["wall_seconds"] + self.clock.seconds(), 1)
        if kind is None:
            shutil.rmtree(os.path.join(self.root, "state"), ignore_errors=True)
            self._save(status="complete", pid=None, wall_seconds=wall)
            try:
                self._publish()
                for hook in self.after:
                    hook(self)
            except BaseException:  # every part done, but not yet published: the same command does it
                self._save(status="interrupted while publishing")
                raise
        else:
            stopped = self.current and self.meta["parts"][self.current]["status"]
            where = f" in {self.current}{stopped[len('interrupted'):]}" if stopped else ""
            self._save(status="interrupted" + where, pid=None, wall_seconds=wall)
        return False

    def _publish(self):
        """Copy the run's figures and numbers, and its run.json, to OUT/plots and OUT/results,
        each file in one step."""
        copies = [(os.path.join(self.root, "run.json"),
                   os.path.join(self.out, "results", f"{self.meta['records'][0]}_run.json"))]
        for kind in ("plots", "results"):
            copies += [(os.path.join(self.root, kind, name), os.path.join(self.out, kind, name))
                       for name in sorted(os.listdir(os.path.join(self.root, kind)))]
        for source, target in copies:
            files.write_atomic(target, lambda tmp, source=source: shutil.copyfile(source, tmp))
        print(f"Run {self.name} complete; its figures and numbers are also in {self.out}/plots "
              f"and {self.out}/results", flush=True)
