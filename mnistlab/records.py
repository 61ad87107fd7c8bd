"""The records runs keep: every field any of them holds and its kind (``schema``), their
layout, how they are written and read back checked, and the runs found under OUT/runs.

A run folder (``OUT/runs/<script>-<date>-<time>-<flags>/``), format ``FORMAT``:

- ``run.json`` (``RUN_FIELDS``): ``format``, ``script``, ``changed`` (the flags that differ from
  the lab's, as labels), ``settings`` (every flag but those that only say where to read and
  write: a stopped run goes on only under the same settings), ``started`` (ISO time),
  ``status`` (``running``, ``complete``, or ``interrupted in PART[ at epoch K]``), ``pid``
  (while running), ``wall_seconds`` (every session together), ``code`` (its code's
  fingerprint, ``code.fingerprint``: an edited script does not resume it), ``records`` (its JSON
  records, the main one first) and ``parts``: for each part in order, ``PART``. A completed run's
  run.json is also published as ``OUT/results/<main record>_run.json``.
- ``results/NAME.json``: a record (``RECORD_FIELDS``): what every fit writes (``training.fit_record``),
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

import os

import psutil

from mnistlab import files
from mnistlab.errors import LabError
from mnistlab.schema import NUMBER, OPTIONAL_INT, OPTIONAL_NUMBER, Fields, ListOf, MapOf, every, read_checked

FORMAT = 1  # of run.json and the records; a later layout raises it, and reads this one

NUMBERS = ListOf(OPTIONAL_NUMBER)
HISTORY = MapOf(ListOf(OPTIONAL_NUMBER, nonempty=True))  # per metric, one number an epoch
# A part's entry in run.json; ``within``: the part whose work it ran inside, beside that one's.
PART = Fields({"status": str, "wall_seconds": NUMBER, "records": ListOf(str), "within": str},
              required=("status", "wall_seconds", "records"))
RUN_FIELDS = {"format": int, "script": str, "status": str, "started": str, "changed": ListOf(str),
              "records": ListOf(str), "settings": dict, "wall_seconds": NUMBER, "parts": MapOf(PART),
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


def read_record(path, fields=RECORD_FIELDS, required=()):
    """The record (or run.json) at ``path``, checked against ``fields``; {} if there is none."""
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
    """The metadata of the Keras backup in ``folder``, or None if there is none."""
    return read_checked(os.path.join(folder, "training_metadata.json"), BACKUP_FIELDS, required=("epoch",)) or None


# Finding runs


def runs_folder(out):
    return os.path.join(out, "runs")


def read_meta(path):
    """A run folder's run.json; a hand-edited or truncated one is refused by name."""
    meta = read_record(os.path.join(path, "run.json"), RUN_FIELDS, required=("script", "status", "started"))
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
    return read_record(os.path.join(meta["path"], "results", f"{name}.json"))


def alive(pid):
    """Whether process ``pid`` still runs (a run marked running may have been killed)."""
    return isinstance(pid, int) and pid > 0 and psutil.pid_exists(pid)
