"""Results written so that an interrupted run never leaves a half-written file."""

import importlib.metadata
import json
import math
import os
import platform
import time

import numpy as np

from mnistlab import backend
from mnistlab.errors import LabError


def write_atomic(path, write):
    """Call ``write(tmp_path)``, then move the finished file into place in one step.

    A failed write (a full disk, a folder that went read-only) leaves the earlier file as it was
    and no temporary file behind, and ends the run with one line naming the folder.
    """
    folder, name = os.path.split(path)
    stem, dot, extensions = name.partition(".")
    tmp = os.path.join(folder, f"{stem}.tmp-{os.getpid()}{dot}{extensions}")  # the same extensions: Keras checks them
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise _cannot_write(os.path.dirname(path), exc, f"{os.path.basename(path)} ") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def check_room(folder, nbytes):
    """Raise LabError unless ``nbytes`` more can be written in ``folder`` (a full disk, a quota)."""
    os.makedirs(folder, exist_ok=True)
    probe = os.path.join(folder, f".room-check-{os.getpid()}")
    try:
        with open(probe, "wb") as f:
            f.write(bytes(nbytes))
    except OSError as exc:
        raise _cannot_write(folder, exc) from None
    finally:
        if os.path.exists(probe):
            os.remove(probe)


def _cannot_write(folder, exc, what=""):
    return LabError(f"cannot write {what}in {folder or '.'} ({exc.strerror or exc}); free some space "
                    "or pass --out to another folder, then rerun the same command")


def save_model(model, path):
    """``model.save`` in one step, as every other result."""
    write_atomic(path, model.save)


def percent(fraction):
    """``0.9847`` as ``98.47%``; "–" for a number there is none of (a diverged run's)."""
    return "–" if fraction is None else f"{100 * fraction:.2f}%"


def mean_std(values):
    """The mean and the sample standard deviation (0 for a single value) of ``values``."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()), (float(values.std(ddof=1)) if values.size > 1 else 0.0)


def write_json(path, data):
    """``data`` as strict JSON: a number that is not finite (a diverged loss) is written as null,
    which every JSON reader accepts (NaN and Infinity are not JSON)."""
    write_text(path, json.dumps(finite_or_none(data), indent=2, allow_nan=False) + "\n")


def finite_or_none(data):
    """``data`` with every float that is not finite replaced by None, at any depth."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite_or_none(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_or_none(value) for value in data]
    return data


def read_json(path, default=None):
    """The JSON in ``path``, or ``default`` if there is none; a truncated or hand-edited file is
    refused by name, never silently replaced (it may hold hours of finished work)."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default
    except (ValueError, UnicodeDecodeError) as exc:
        raise LabError(f"{path} is not valid JSON ({exc.__class__.__name__}: truncated or edited?); "
                       "move it aside or delete it, then rerun") from None
    except OSError as exc:
        raise LabError(f"cannot read {path} ({exc.strerror}); check its permissions") from None


def read_store(path, required):
    """``read_json`` of a dict that must hold the keys ``required``; None if there is no file."""
    data = read_json(path)
    if data is not None and not (isinstance(data, dict) and all(key in data for key in required)):
        raise LabError(f"{path} lacks {', '.join(required)} (edited by hand?); "
                       "move it aside or delete it, then rerun")
    return data


NUMBER = (int, float)
OPTIONAL_NUMBER = (int, float, type(None))


def read_checked(path, fields, required=()):
    """A JSON dict whose fields hold what ``fields`` says, and whose history, if it has one, is
    non-empty lists of numbers (None for a diverged epoch); {} if there is no file. Anything
    else is refused by name, never used or replaced."""
    data = read_store(path, required)
    if data is None:
        return {}
    history = data.get("history") if isinstance(data.get("history"), dict) else {}
    bad_history = any(not isinstance(values, list) or not values
                      or not all(isinstance(v, OPTIONAL_NUMBER) for v in values) for values in history.values())
    check_kinds(data, fields, path, also_wrong=["history"] if bad_history else [])
    return data


def check_kinds(data, fields, path, what="something", required=(), also_wrong=()):
    """Refuse by name the file ``path`` whose ``data`` (a dict) holds, in a field of ``fields``
    (present, or ``required``), a value of another kind than the field's."""
    if not isinstance(data, dict):
        wrong = ["its form"]
    else:
        wrong = [key for key, kinds in fields.items()
                 if (key in data or key in required) and not isinstance(data.get(key), kinds)]
    wrong += also_wrong
    if wrong:
        raise LabError(f"{path} holds {what} of an unexpected form ({', '.join(wrong)}; edited by hand?); "
                       "move it aside or delete it, then rerun")


def diverged_at(history):
    """The first epoch (from 1) whose training loss is not a finite number, or None."""
    return next((epoch for epoch, loss in enumerate(history.get("loss", []), 1)
                 if loss is None or not math.isfinite(loss)), None)


def write_text(path, text):
    def dump(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    write_atomic(path, dump)


def environment():
    """Machine and versions, for the record of each run."""
    import keras
    import numpy

    return {
        "python": platform.python_version(),
        "tensorflow": _version("tensorflow-cpu") or _version("tensorflow"),
        "keras": keras.__version__,
        "jax": _version("jax"),
        "numpy": numpy.__version__,
        "backend": keras.backend.backend(),
        "onednn": (backend.onednn() or "TensorFlow's default for this CPU")
                  if keras.backend.backend() == "tensorflow" else None,
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
    }


class Stopwatch:
    def __init__(self):
        self.start = time.perf_counter()

    def seconds(self):
        return round(time.perf_counter() - self.start, 2)


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
