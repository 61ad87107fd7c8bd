"""The records a run keeps: every field any of them holds and its kind, their layout, and how
they are written, read and checked.

A run folder (``OUT/runs/<script>-<date>-<time>-<flags>/``), format ``FORMAT``:

- ``run.json`` (``RUN_FIELDS``): ``format``, ``script``, ``changed`` (the flags that differ from
  the lab's, as labels), ``settings`` (every flag but those that only say where to read and
  write: a stopped run goes on only under the same settings), ``started`` (ISO time),
  ``status`` (``running``, ``complete``, or ``interrupted in PART[ at epoch K]``), ``pid``
  (while running), ``wall_seconds`` (every session together), ``code`` (its script's
  fingerprint, ``code.fingerprint``: an edited script does not resume it), ``records`` (its JSON
  records, the main one first) and ``parts``: for each part in order, ``PART_FIELDS``. A completed run's
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
from typing import NamedTuple

from mnistlab import backend, files
from mnistlab.errors import LabError

FORMAT = 1  # of run.json and the records; a later layout raises it, and reads this one

NUMBER = (int, float)
OPTIONAL_NUMBER = (int, float, type(None))  # None: a number a diverged run has not got
OPTIONAL_INT = (int, type(None))


class ListOf(NamedTuple):
    """A list whose items are each of kind ``item``; ``nonempty``: with at least one."""
    item: object
    nonempty: bool = False


class MapOf(NamedTuple):
    """A dict whose values, under any key, are each of kind ``value``."""
    value: object


class Fields(NamedTuple):
    """A dict whose ``fields`` hold their kinds where present, and which has ``required``."""
    fields: dict
    required: tuple = ()


def every(fields):
    """``Fields`` that must all be there."""
    return Fields(fields, tuple(fields))


def fits(value, kind):
    """Whether ``value`` is of ``kind``: a type or tuple of types, or a ``ListOf``, ``MapOf`` or
    ``Fields``, checked all the way down."""
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
PART_FIELDS = {"status": str, "wall_seconds": NUMBER, "records": ListOf(str)}
RUN_FIELDS = {"format": int, "script": str, "status": str, "started": str, "changed": ListOf(str),
              "records": ListOf(str), "settings": dict, "wall_seconds": NUMBER, "parts": MapOf(every(PART_FIELDS)),
              "pid": OPTIONAL_INT, "code": every({"file": str, "fingerprint": str, "definitions": MapOf(str)})}
STUDY_SETTINGS = Fields({"hidden": ListOf(int, nonempty=True), "l2_layers": str, "epochs": int, "lr": NUMBER,
                         "schedule": str, "batch_size": int, "seed": int, "quick": bool, "backend": str},
                        required=("hidden", "l2_layers", "epochs", "lr", "batch_size"))
RECORD_FIELDS = {
    # every fit's
    "format": int, "name": str, "status": str, "config": dict, "environment": dict, "history": HISTORY,
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
                     "accuracy_noisy_std": NUMBERS}),
}
TRIAL_FIELDS = {"settings": dict, "l2": NUMBER, "replicate": int, "final_val_accuracy": OPTIONAL_NUMBER,
                "diverged_at_epoch": OPTIONAL_INT, "history": HISTORY, "wall_seconds": NUMBER}
BACKUP_FIELDS = {"epoch": int, "batch": int, "weights": str, "shuffle": dict}


def check_kinds(data, fields, path, what="something", required=()):
    """Refuse by name the file ``path`` whose ``data`` (a dict) holds, in a field of ``fields``
    (present, or ``required``), a value of another kind than the field's, at any depth."""
    if not isinstance(data, dict):
        wrong = ["its form"]
    else:
        wrong = [key for key, kind in fields.items()
                 if (key in data or key in required) and not fits(data.get(key), kind)]
    if wrong:
        raise LabError(f"{path} holds {what} of an unexpected form ({', '.join(wrong)}; edited by hand?); "
                       "move it aside or delete it, then rerun")


def read_checked(path, fields, required=()):
    """A JSON dict whose fields hold what ``fields`` says; {} if there is no file."""
    data = files.read_json(path)
    if data is None:
        return {}
    if required and not (isinstance(data, dict) and all(key in data for key in required)):
        raise LabError(f"{path} lacks {', '.join(required)} (edited by hand?); move it aside or delete it, then rerun")
    check_kinds(data, fields, path)
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


def loss_name(model):
    """The Keras name of a compiled model's loss, as the record keeps it."""
    return model.loss if isinstance(model.loss, str) else type(model.loss).__name__


def fit_record(first, model, history, scores, *, examples, layers, wall_seconds):
    """A finished fit's record: ``first_fields``, then its history, loss, data sizes, layers (as
    ``plots.layer_table`` gives them), parameters, test scores, wall time and divergence."""
    return {**first, "status": "complete", "history": history, "loss": loss_name(model), "examples": examples, "layers": layers,
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
        "cpu": backend.cpu_name(),
        "device": backend.device(),
        "cores": os.cpu_count(),
    }


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None
