"""One run of a lab script: its folder ``OUT/runs/<script>-<date>-<time>-<flags>/``, its named
parts (each a function handed to ``Run.part``), going on after a stop, and, once complete, its
figures and numbers copied to ``OUT/plots`` and ``OUT/results`` (what REPORT.md reads) and
compared with the script's latest runs. Rerun, a stopped run skips its finished parts and goes
on from the last finished epoch (``training.checkpoint``) or trial (its store). Its files and
how runs are found: ``records``.
"""

import datetime
import os
import re
import shutil

from mnistlab import code, compare, files, flags, records, stats, stops


# Which folder a run writes to


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


# The run a command goes on with, or a new one


def stopped_run(out, script, values, fingerprint):
    """The newest unfinished run of ``script`` with these settings, not running elsewhere, if its
    code is ``fingerprint``'s; a run whose script has been edited since, or whose code either
    side does not know (an edit cannot be ruled out), is named and left."""
    for meta in reversed(records.all_runs(out)):
        if (meta["script"] == script and meta["status"] != "complete"
                and settings(meta.get("settings", {})) == values
                and not (meta["status"] == "running" and records.alive(meta.get("pid")))):
            why = code.changed_since(meta.get("code"), fingerprint, f"{script}.py")
            if not why:
                return meta
            print(f"Not resuming run {meta['name']}: {why}; starting a new run", flush=True)
            return None
    return None


def new_run(out, script, changed, values, fingerprint):
    """The folder (not made yet) and run.json of a new run of ``script``."""
    now = datetime.datetime.now()
    path = os.path.join(records.runs_folder(out), folder_name(script, changed, now))
    while os.path.exists(path):  # two runs in the same second
        path += "+"
    return path, {"format": records.FORMAT, "script": script, "changed": changed, "settings": values,
                  **({"code": fingerprint} if fingerprint else {}),
                  "started": now.isoformat(timespec="seconds"), "wall_seconds": 0.0, "parts": {}}


class Run(files.Outputs):
    """The folder of one run of ``script`` with the flags ``args``, made or (a stopped run's)
    found again; ``with`` it around the run's parts. Complete, it is published and compared;
    stopped or failed, it is marked interrupted, and the same command goes on in it."""

    def __init__(self, script, args):
        self.script, self.out = script, args.out
        values, fingerprint = settings(vars(args)), code.fingerprint(script)
        files.Outputs(args.out)  # OUT itself must be writable before anything is made
        self.meta = stopped_run(args.out, script, values, fingerprint)
        if self.meta:
            path = self.meta["path"]
            print(f"Resuming run {self.meta['name']} ({self.meta['status']})", flush=True)
        else:
            path, self.meta = new_run(args.out, script, args.changed, values, fingerprint)
        super().__init__(path)
        self.name = os.path.basename(path)
        self.meta.setdefault("records", [])
        self.current = None  # the part in progress
        self.clock = stats.Stopwatch()
        self._save(status="running", pid=os.getpid())

    # The parts

    def part(self, name, work, *args):
        """``work(*args)`` as the part ``name``; a part finished in an earlier session of this run
        is skipped (returning None), and says so. A part may run inside another's work (beside
        it): its entry names that one (``within``), whose wall time holds its own."""
        stops.raise_pending()
        parts = self.meta["parts"]
        earlier = parts.get(name, {})
        if earlier.get("status") == "complete":
            print(f"{name}: finished in an earlier session of this run ({stats.fmt_seconds(earlier['wall_seconds'])}); "
                  "not trained again", flush=True)
            return None
        if earlier:
            print(f"{name}: going on where it stopped", flush=True)
        outer, self.current, clock, spent = self.current, name, stats.Stopwatch(), earlier.get("wall_seconds", 0.0)
        parts[name] = {"status": "running", "wall_seconds": spent, "records": earlier.get("records", []),
                       **({"within": outer} if outer else {})}
        self._save()
        try:
            value = work(*args)
        except BaseException:
            parts[name].update(status=self._where_stopped(name), wall_seconds=round(spent + clock.seconds(), 1))
            raise
        parts[name].update(status="complete", wall_seconds=round(spent + clock.seconds(), 1))
        self.current = outer
        for record in parts[name]["records"]:  # its fits are past resuming
            shutil.rmtree(self.backup(record), ignore_errors=True)
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
        return os.path.join(self.root, "state", "backup", name)

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
                compare.latest(self)
            except BaseException:  # every part done, but not yet published: the same command does it
                self._save(status="interrupted while publishing")
                raise
        else:
            stopped = self.current and self.meta["parts"][self.current]["status"]
            where = f" in {self.current}{stopped[len('interrupted'):]}" if stopped else ""
            self._save(status="interrupted" + where, pid=None, wall_seconds=wall)
        return False

    def _publish(self):
        """Copy the run's figures, numbers and run.json to OUT/plots and OUT/results."""
        copies = [(os.path.join(self.root, "run.json"),
                   os.path.join(self.out, "results", f"{self.meta['records'][0]}_run.json"))]
        for kind in ("plots", "results"):
            copies += [(os.path.join(self.root, kind, name), os.path.join(self.out, kind, name))
                       for name in sorted(os.listdir(os.path.join(self.root, kind)))]
        for source, target in copies:
            files.write_atomic(target, lambda tmp, source=source: shutil.copyfile(source, tmp))
        print(f"Run {self.name} complete; its figures and numbers are also in {self.out}/plots "
              f"and {self.out}/results", flush=True)
