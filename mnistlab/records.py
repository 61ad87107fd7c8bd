"""What runs write and read back: files written in one step and read strictly (JSON with null,
never NaN), every field a record may hold and its kind, the runs found, the numbers every part
states alike, a script's code fingerprinted; docs/runs.md tells a run folder's layout.
"""

import ast
import contextlib
import hashlib
import json
import math
import os
import re
import sys
import tempfile
import time
from typing import NamedTuple

from mnistlab.cli import LabError, cannot_write

FORMAT = 1  # of run.json and the records; a later layout raises it, and reads this one
TEMPORARY = re.compile(r"\.tmp-(\d+)(\.|$)")  # in a file's name while it is written: never read nor published

# Files

def write_atomic(path, write, what=None):
    """``write(tmp_path)``, flushed and moved into place in one step: a failure leaves the earlier file."""
    folder, name = os.path.split(path)
    stem, dot, extensions = name.partition(".")
    tmp = os.path.join(folder, f"{stem}.tmp-{os.getpid()}{dot}{extensions}")  # the same extensions: Keras checks them
    try:
        write(tmp)
        to_disk(tmp)
        os.replace(tmp, path)
        to_disk(folder or ".", folder=True)
    except OSError as exc:
        raise cannot_write(what or f"{name} in {folder or '.'}", exc) from None
    finally:
        if os.path.isfile(tmp):
            os.remove(tmp)

def to_disk(path, folder=False):
    """Flush the file (or ``folder``) ``path`` to the disk; not a folder on Windows, which cannot."""
    if folder and os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY if folder else os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

def remove_temporaries(folder):
    """What writes cut short by a crash left in ``folder`` (their process gone)."""
    for name in os.listdir(folder):
        if (match := TEMPORARY.search(name)) and not alive({"pid": int(match[1])}):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(folder, name))

def write_text(path, text):
    def dump(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    write_atomic(path, dump)

def finite_or_none(data):
    """``data`` with every float that is not finite (a diverged loss) as None."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite_or_none(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_or_none(value) for value in data]
    return data

def write_json(path, data):
    write_text(path, json.dumps(finite_or_none(data), indent=2, allow_nan=False) + "\n")

def _not_json(token):
    raise ValueError(f"{token} is not a JSON number")  # Python reads NaN and Infinity; no record holds them

def writable(folder):
    """None if files can be written in ``folder`` (made if need be), else the OSError."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return None
    except OSError as exc:
        return exc

def check_outputs(out):
    """Refuse, before any training, an output folder whose plots/ and results/ cannot be written."""
    for folder in (os.path.join(out, "plots"), os.path.join(out, "results")):
        if exc := writable(folder):
            raise LabError(f"cannot write to {folder} ({exc.strerror}); pass --out to a writable folder")

# The kinds a field may hold

NUMBER = (int, float)
OPTIONAL_NUMBER = (int, float, type(None))  # None: a number a diverged run has not got
OPTIONAL_INT = (int, type(None))

class ListOf(NamedTuple):
    item: object
    nonempty: bool = False

class MapOf(NamedTuple):  # a dict whose values are each of kind ``value``
    value: object

class Fields(NamedTuple):
    fields: dict
    required: tuple = ()

def every(fields):  # Fields that must all be there
    return Fields(fields, tuple(fields))

def fits(value, kind):
    """Whether ``value`` is of ``kind`` (a type, a tuple of them, ListOf, MapOf or Fields)."""
    if isinstance(kind, ListOf):
        return isinstance(value, list) and bool(value or not kind.nonempty) and all(fits(v, kind.item) for v in value)
    if isinstance(kind, MapOf):
        return isinstance(value, dict) and all(fits(v, kind.value) for v in value.values())
    if isinstance(kind, Fields):
        return (isinstance(value, dict) and all(key in value for key in kind.required)
                and all(fits(value[key], sub) for key, sub in kind.fields.items() if key in value))
    return isinstance(value, kind)

NUMBERS = ListOf(OPTIONAL_NUMBER)
HISTORY = MapOf(ListOf(OPTIONAL_NUMBER, nonempty=True))  # per metric, one number an epoch
# A part's entry in run.json; ``within``: the part whose work it ran inside, beside that one's.
PART = Fields({"status": str, "wall_seconds": NUMBER, "records": ListOf(str), "within": str},
              required=("status", "wall_seconds", "records"))
RUN_FIELDS = {"format": int, "script": str, "status": str, "started": str, "changed": ListOf(str),
              "records": ListOf(str), "settings": dict, "wall_seconds": NUMBER, "parts": MapOf(PART),
              "pid": OPTIONAL_INT, "pid_started": OPTIONAL_NUMBER,
              "code": every({"file": str, "fingerprint": str, "definitions": MapOf(str)})}
STUDY_SETTINGS = Fields({"hidden": ListOf(int, nonempty=True), "l2_layers": str, "epochs": int, "lr": NUMBER,
                         "schedule": str, "batch_size": int, "seed": int, "quick": bool, "backend": str},
                        required=("hidden", "l2_layers", "epochs", "lr", "batch_size"))
RECORD_FIELDS = {
    # every fit's
    "format": int, "run": str, "name": str, "status": str, "config": dict, "environment": dict, "history": HISTORY,
    "loss": str, "examples": every({"train": int, "test": int}),
    "layers": ListOf(every({"layer": str, "kind": str, "output_shape": ListOf(OPTIONAL_INT), "parameters": int}),
                     nonempty=True),
    "parameters": int, "test_loss": OPTIONAL_NUMBER, "test_accuracy": OPTIONAL_NUMBER,
    "wall_seconds": OPTIONAL_NUMBER, "diverged_at_epoch": OPTIONAL_INT,
    # the CNN's
    "per_class_accuracy": NUMBERS,
    # the L2 study's
    "settings": STUDY_SETTINGS, "trials_run": int, "workers": int,
    "rows": ListOf(Fields({"l2": NUMBER, "replicates": int, "mean": OPTIONAL_NUMBER, "std": OPTIONAL_NUMBER,
                           "best": OPTIONAL_NUMBER, "diverged": int, "accuracies": NUMBERS},
                          required=("l2", "replicates", "mean", "std", "best")), nonempty=True),
    # the autoencoder's and its accuracy study's
    "reconstruction": ListOf(every({"noise_level": NUMBER, "bce_noisy": OPTIONAL_NUMBER, "bce_denoised": OPTIONAL_NUMBER,
                                    "psnr_noisy_db": OPTIONAL_NUMBER, "psnr_denoised_db": OPTIONAL_NUMBER})),
    "noise_levels": ListOf(NUMBER, nonempty=True), "draws": int, "study_mode": str,
    "classifiers": ListOf(every({"name": str, "accuracy_clean": OPTIONAL_NUMBER, "accuracy_noisy": NUMBERS,
                                 "accuracy_noisy_std": NUMBERS, "accuracy_denoised": NUMBERS,
                                 "accuracy_denoised_std": NUMBERS}), nonempty=True),
    "reader": every({"name": str, "accuracy_clean": OPTIONAL_NUMBER, "accuracy_noisy": NUMBERS,
                     "accuracy_noisy_std": NUMBERS})}
TRIAL_FIELDS = {"settings": dict, "l2": NUMBER, "replicate": int, "final_val_accuracy": OPTIONAL_NUMBER,
                "diverged_at_epoch": OPTIONAL_INT, "history": HISTORY, "wall_seconds": NUMBER}
BACKUP_FIELDS = {"epoch": int, "weights": str, "shuffle": dict}

def read(path, fields=RECORD_FIELDS, required=(), what="something"):
    """The JSON dict at ``path`` ({} if none) as ``fields`` says; a truncated, edited or newer one refused."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f, parse_constant=_not_json)
    except FileNotFoundError:
        return {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise LabError(f"{path} is not valid JSON ({exc.__class__.__name__}: truncated or edited?); "
                       "move it aside or delete it, then rerun") from None
    except IsADirectoryError:
        raise LabError(f"{path} is a folder where a record goes; move it aside, then rerun") from None
    except OSError as exc:
        raise LabError(f"cannot read {path} ({exc.strerror}); check its permissions") from None
    if required and not (isinstance(data, dict) and all(key in data for key in required)):
        raise LabError(f"{path} lacks {', '.join(required)} (edited by hand?); move it aside or delete it, then rerun")
    wrong = ([key for key, kind in fields.items() if key in data and not fits(data[key], kind)]
             if isinstance(data, dict) else ["its form"])
    if wrong:
        raise LabError(f"{path} holds {what} of an unexpected form ({', '.join(wrong)}; edited by hand?); "
                       "move it aside or delete it, then rerun")
    if data.get("format", FORMAT) > FORMAT:
        raise LabError(f"{path} was written by a newer version of this project (format {data['format']}); "
                       "update the project, or pass --out to another folder")
    return data

# Runs found

KILLED = "killed (its process is gone; rerun its command to go on)"
UNPUBLISHED = "finished, not yet published (rerun its command to publish it)"

def this_process():
    """This process's identity, which ``alive`` checks: its id and its start time."""
    import psutil  # here: this module loads at a command's first line
    return {"pid": os.getpid(), "pid_started": psutil.Process().create_time()}

def alive(meta):
    """Whether the process ``meta`` names runs: its ``pid`` started at ``pid_started`` (a later one given the id is not it)."""
    import psutil
    pid, started = meta.get("pid"), meta.get("pid_started")
    try:
        process = psutil.Process(pid) if isinstance(pid, int) and pid > 0 else None
        return process is not None and (not started or abs(process.create_time() - started) < 1)
    except psutil.Error:  # gone, a zombie, or another user's
        return False

def all_runs(out):
    """Every run under OUT/runs (run.json, its path and name), oldest first."""
    found, folder = [], os.path.join(out, "runs")
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        path = os.path.join(folder, name, "run.json")
        meta = os.path.isdir(os.path.dirname(path)) and read(path, RUN_FIELDS, required=("script", "status", "started"))
        if not meta:
            continue
        meta = {"changed": [], "parts": {}, **meta, "path": os.path.join(folder, name), "name": name}
        if meta["status"] == "running" and not alive(meta):  # killed before it could say so
            meta["status"] = KILLED
            for part in meta["parts"].values():
                if part["status"] == "running":
                    part["status"] = "killed"
        found.append(meta)
    return sorted(found, key=lambda meta: (meta["started"], meta["name"]))

def record_of(meta, name=None):
    """A run's main record (or record ``name``), or {} when it has not written one yet."""
    name = name or (meta.get("records") or [meta["script"]])[0]
    return read(os.path.join(meta["path"], "results", f"{name}.json"))

# Numbers said the same way everywhere

def percent(fraction):
    """``0.9847`` as ``98.47%``; "–" for a number there is none of (a diverged run's)."""
    return "–" if fraction is None else f"{100 * fraction:.2f}%"

def fmt_seconds(seconds):
    return "–" if seconds is None else f"{seconds:,.0f} s"

def mean_std(values):
    """The mean and the sample standard deviation (0 for a single value)."""
    import numpy as np  # here: this module loads at a command's first line
    values = np.asarray(values, dtype=float)
    return float(values.mean()), (float(values.std(ddof=1)) if values.size > 1 else 0.0)

def diverged_at(history):
    """The first epoch (from 1) whose training loss is not a finite number, or None."""
    return next((epoch for epoch, loss in enumerate(history.get("loss", []), 1)
                 if loss is None or not math.isfinite(loss)), None)

class Stopwatch:
    def __init__(self):
        self.start = time.perf_counter()

    def seconds(self):
        return round(time.perf_counter() - self.start, 2)

# A script's code, fingerprinted: a run stopped before its script was edited (a Dropout added to
# build_mlp) is not resumed by the edited one, and runs whose flags agree but whose code does not
# are told apart. Comments and layout are not code.

MODULE_LEVEL = "module-level statements"

def of_file(path):
    """Digests of each top-level definition of the script at ``path`` (the rest as MODULE_LEVEL) and
    of the modules beside it that it imports (``mlp_mnist.build_mlp``); None if one is unreadable."""
    trees = {}
    try:
        with open(path, encoding="utf-8") as f:
            trees[""] = ast.parse(f.read())
        names = {alias.name for node in ast.walk(trees[""]) if isinstance(node, ast.Import) for alias in node.names}
        names |= {node.module for node in ast.walk(trees[""]) if isinstance(node, ast.ImportFrom) and node.module}
        for name in sorted(names):  # a module beside the script, where Python finds it first
            beside = os.path.join(os.path.dirname(path), f"{name}.py")
            if os.path.isfile(beside):
                with open(beside, encoding="utf-8") as f:
                    trees[f"{name}."] = ast.parse(f.read())
    except (TypeError, OSError, SyntaxError, ValueError):
        return None
    definitions = {}
    for prefix, tree in trees.items():
        rest = []
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                definitions[prefix + node.name] = hashlib.sha256(ast.dump(node).encode()).hexdigest()[:12]
            else:
                rest.append(ast.dump(node))
        definitions[prefix + MODULE_LEVEL] = hashlib.sha256("\n".join(rest).encode()).hexdigest()[:12]
    whole = "\n".join(f"{name} {digest}" for name, digest in sorted(definitions.items()))
    return {"file": os.path.basename(path), "fingerprint": hashlib.sha256(whole.encode()).hexdigest()[:12],
            "definitions": definitions}

def fingerprint(script):
    """``of_file`` of ``script`` as this process loaded it (run, in a pool worker, or imported)."""
    for name in ("__main__", "__mp_main__", script):
        path = getattr(sys.modules.get(name), "__file__", None) or ""
        if os.path.basename(path) == f"{script}.py":
            return of_file(path)
    return None

def modules_of(fingerprint):
    """The modules beside the script whose definitions ``fingerprint`` holds (``mlp_mnist``)."""
    return {name.partition(".")[0] for name in fingerprint["definitions"] if "." in name}

def edited(before, now):
    """The definitions changed between two fingerprints (not a module only one recorded); [] if unknown."""
    if not before or not now:
        return []
    both = modules_of(before) & modules_of(now)
    old, new = ({name: digest for name, digest in side["definitions"].items()
                 if "." not in name or name.partition(".")[0] in both} for side in (before, now))
    return [name for name in [*new, *(name for name in old if name not in new)] if old.get(name) != new.get(name)]

def changed_since(stopped, now, file):
    """Why work done with the code ``stopped`` cannot go on under ``now`` (an edit, possibly), or None."""
    if not now:
        return f"the code of {file} cannot be read, so an edit since it stopped cannot be ruled out"
    unrecorded = [f"{name}.py" for name in sorted(modules_of(now) - modules_of(stopped))] if stopped else [file]
    if unrecorded:
        return f"it did not record the code of {' and '.join(unrecorded)}, so an edit since it stopped cannot be ruled out"
    changed = edited(stopped, now)
    if not changed:
        return None
    files = sorted({f"{name.partition('.')[0]}.py" if "." in name else file for name in changed})
    return (f"{' and '.join(files)} {'has' if len(files) == 1 else 'have'} changed since it stopped "
            f"({', '.join(changed)})")
