"""The records a run keeps: every field any of them holds and its kind, their layout, and how
they are written, read and checked.

A run folder (``OUT/runs/<script>-<date>-<time>-<flags>/``), format ``FORMAT``:

- ``run.json`` (``RUN_FIELDS``): ``format``, ``script``, ``changed`` (the flags that differ from
  the lab's, as labels), ``settings`` (every flag but those that only say where to read and
  write: a stopped run goes on only under the same settings), ``started`` (ISO time),
  ``status`` (``running``, ``complete``, or ``interrupted in PART[ at epoch K]``), ``pid``
  (while running), ``wall_seconds`` (every session together), ``records`` (its JSON records,
  the main one first) and ``parts``: for each part in order, ``PART_FIELDS``. A completed run's
  run.json is also published as ``OUT/results/<main record>_run.json``.
- ``results/NAME.json``: a record (``RECORD_FIELDS``): what every fit writes (``fit_record``),
  and what each script adds: the CNN's ``per_class_accuracy``; the L2 study's ``settings``,
  ``rows``, ``trials_run``, ``workers``; the autoencoder's ``reconstruction`` (4B) and the
  accuracy study's ``noise_levels``, ``draws``, ``classifiers``, ``study_mode`` (4C) and
  ``reader``, 4B's classifier trained on noisy digits, scored on the same noisy ones.
- ``results/mlp_l2_study_trials.json``: the study's finished trials (``TRIAL_FIELDS``), its
  resume state.
- ``plots/``: the run's figures. ``state/``: what a stopped part goes on from (Keras backups,
  with metadata of ``BACKUP_FIELDS``; trained weights that later parts load); removed when the
  run completes.

Every JSON is strict (null, never NaN). Every record is read through ``read_record``, which
refuses by name one whose fields hold something unexpected or that a newer format wrote.
"""

import importlib.metadata
import math
import os
import platform

from mnistlab import backend, files
from mnistlab.errors import LabError

FORMAT = 1  # of run.json and the records; a later layout raises it, and reads this one

NUMBER = (int, float)
OPTIONAL_NUMBER = (int, float, type(None))

RUN_FIELDS = {"format": int, "script": str, "status": str, "started": str, "changed": list, "records": list,
              "settings": dict, "wall_seconds": NUMBER, "parts": dict, "pid": (int, type(None))}
PART_FIELDS = {"status": str, "wall_seconds": NUMBER, "records": list}
RECORD_FIELDS = {
    # every fit's
    "format": int, "name": str, "status": str, "config": dict, "environment": dict, "history": dict,
    "loss": str, "examples": dict, "layers": list, "parameters": int, "test_loss": OPTIONAL_NUMBER,
    "test_accuracy": OPTIONAL_NUMBER, "wall_seconds": OPTIONAL_NUMBER, "diverged_at_epoch": (int, type(None)),
    # the CNN's
    "per_class_accuracy": list,
    # the L2 study's
    "settings": dict, "rows": list, "trials_run": int, "workers": int,
    # the autoencoder's and its accuracy study's
    "reconstruction": list, "noise_levels": list, "draws": int, "classifiers": list, "study_mode": str,
    "reader": dict,
}
TRIAL_FIELDS = {"settings": dict, "l2": NUMBER, "replicate": int, "final_val_accuracy": OPTIONAL_NUMBER,
                "diverged_at_epoch": (int, type(None)), "history": dict, "wall_seconds": NUMBER}
BACKUP_FIELDS = {"epoch": int, "batch": int, "weights": str}


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


def read_checked(path, fields, required=()):
    """A JSON dict whose fields hold what ``fields`` says, and whose history, if it has one, is
    non-empty lists of numbers (None for a diverged epoch); {} if there is no file."""
    data = files.read_json(path)
    if data is None:
        return {}
    if required and not (isinstance(data, dict) and all(key in data for key in required)):
        raise LabError(f"{path} lacks {', '.join(required)} (edited by hand?); move it aside or delete it, then rerun")
    history = data.get("history") if isinstance(data, dict) and isinstance(data.get("history"), dict) else {}
    bad_history = any(not isinstance(values, list) or not values
                      or not all(isinstance(v, OPTIONAL_NUMBER) for v in values) for values in history.values())
    check_kinds(data, fields, path, also_wrong=["history"] if bad_history else [])
    return data


def read_record(path, fields=RECORD_FIELDS, required=()):
    """The record (or run.json) at ``path``, checked against ``fields``; {} if there is none.
    One of another form, or of a newer format, is refused by name."""
    record = read_checked(path, fields, required)
    if record.get("format", FORMAT) > FORMAT:
        raise LabError(f"{path} was written by a newer version of this project (format "
                       f"{record['format']}); update the project, or pass --out to another folder")
    return record


def write_record(path, record):
    """Write ``record`` (a dict) in this layout; returns the record written."""
    record = {"format": FORMAT, **record}
    files.write_json(path, record)
    return record


def read_backup(folder):
    """The metadata of the Keras backup in ``folder`` (the epochs it holds and its weights
    file), or None if there is none."""
    return read_checked(os.path.join(folder, "training_metadata.json"), BACKUP_FIELDS, required=("epoch",)) or None


def diverged_at(history):
    """The first epoch (from 1) whose training loss is not a finite number, or None."""
    return next((epoch for epoch, loss in enumerate(history.get("loss", []), 1)
                 if loss is None or not math.isfinite(loss)), None)


def fit_record(first, model, history, scores, *, examples, layers, wall_seconds):
    """A finished fit's record: ``first_fields``, then its history, loss, data sizes, layers (as
    ``plots.layer_table`` gives them), parameters, test scores, wall time and divergence."""
    loss = model.loss if isinstance(model.loss, str) else type(model.loss).__name__
    return {**first, "status": "complete", "history": history, "loss": loss, "examples": examples, "layers": layers,
            "parameters": model.count_params(), "wall_seconds": wall_seconds,
            "diverged_at_epoch": diverged_at(history), **{f"test_{k}": v for k, v in scores.items()}}


def first_fields(name, args):
    """What a record says from its first epoch on: its name, the flags, and the environment."""
    return {"name": name, "config": vars(args), "environment": environment()}


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
