"""Results written so that an interrupted run never leaves a half-written file."""

import importlib.metadata
import json
import os
import platform
import time

import numpy as np

from mnistlab.errors import LabError


def write_atomic(path, write):
    """Call ``write(tmp_path)``, then move the finished file into place in one step.

    A failed write (a full disk, a folder that went read-only) leaves the earlier file as it was
    and no temporary file behind, and ends the run with one line naming the folder.
    """
    root, extension = os.path.splitext(path)
    tmp = f"{root}.tmp-{os.getpid()}{extension}"  # the same extension: Keras checks it
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


def mean_std(values):
    """The mean and the sample standard deviation (0 for a single value) of ``values``."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()), (float(values.std(ddof=1)) if values.size > 1 else 0.0)


def write_json(path, data):
    write_text(path, json.dumps(data, indent=2) + "\n")


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


def write_text(path, text):
    def dump(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    write_atomic(path, dump)


def environment():
    """Machine and versions, for the record of each run."""
    import keras
    import numpy

    from mnistlab import backend

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
