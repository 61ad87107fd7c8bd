"""Results written so that an interrupted run never leaves a half-written file."""

import importlib.metadata
import json
import os
import platform
import time


def write_atomic(path, write):
    """Call ``write(tmp_path)``, then move the finished file into place in one step."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path, data):
    write_text(path, json.dumps(data, indent=2) + "\n")


def read_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


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
