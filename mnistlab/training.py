"""Seeding, compiling and fitting, shared so that every script trains the same fast way."""

import os
import sys

import keras

from mnistlab import results

# Several batches per call into the backend: identical math, far less per-step overhead.
STEPS_PER_EXECUTION = 32


def set_seed(seed):
    """Seed Python, NumPy and the backend. On CPU these models' kernels are already
    deterministic (tests/test_*.py check it); TensorFlow's op-determinism mode only slows them."""
    keras.utils.set_random_seed(seed)


def learning_rate(lr, schedule, total_steps):
    """``lr`` held constant, or (``"cosine"``) decayed along a cosine to 0 over ``total_steps``."""
    if schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(lr, decay_steps=total_steps)
    return lr


def compile_model(model, optimizer, loss, metrics=("accuracy",)):
    model.compile(optimizer=optimizer, loss=loss, metrics=list(metrics),
                  steps_per_execution=STEPS_PER_EXECUTION)
    return model


def verbosity():
    """A live progress bar in a terminal; one line per epoch in logs and CI."""
    return 1 if sys.stdout.isatty() else 2


class SaveProgress(keras.callbacks.Callback):
    """Rewrite the run's JSON after every epoch, so an interrupted run keeps its history.

    Epoch ``k``'s numbers go to place ``k`` of each list, so an epoch trained again after an
    interruption replaces its earlier entry instead of repeating it.
    """

    def __init__(self, path, record):
        super().__init__()
        self.path, self.record = path, record

    def on_epoch_end(self, epoch, logs=None):
        history = self.record.setdefault("history", {})
        for key, value in (logs or {}).items():
            history[key] = history.get(key, [])[:epoch] + [float(value)]
        self.record["status"] = f"running: {epoch + 1} epochs done"
        results.write_json(self.path, self.record)


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras's BackupAndRestore, kept until the caller deletes it (a fit that trains one epoch
    per call, on fresh noise, must not lose it between calls), which checks that the disk has
    room for an epoch's backup before h5py writes it: a write that fails half-way leaves h5py
    unable even to close the file."""

    def __init__(self, folder):
        super().__init__(folder, delete_checkpoint=False)

    def on_epoch_end(self, epoch, logs=None):
        # The weights and up to two optimizer slots per weight (Adam's), in float32, and the file's own overhead.
        results.check_room(self.backup_dir, 4 * 4 * self.model.count_params() + 2**16)
        super().on_epoch_end(epoch, logs)


def backup_and_restore(folder):
    return BackupAndRestore(folder)


def epochs_backed_up(folder):
    """How many epochs the BackupAndRestore state in ``folder`` holds (0 if none)."""
    metadata = results.read_store(os.path.join(folder, "training_metadata.json"), required=("epoch",))
    return int(metadata["epoch"]) if metadata else 0


def fit(model, x, y, *, epochs, batch_size, validation_data=None, validation_freq=1, verbose=None,
        callbacks=(), initial_epoch=0):
    """``model.fit`` on arrays; returns the per-epoch history as a dict of lists.

    ``x`` may also be a function of the epoch number that returns that epoch's inputs, for
    training on freshly drawn noise every epoch; each epoch is then one ``fit`` call.
    """
    verbose = verbosity() if verbose is None else verbose
    if callable(x):  # lazily: only one epoch's inputs are in memory at a time
        calls = ((epoch, epoch + 1, x(epoch)) for epoch in range(initial_epoch, epochs))
    else:
        calls = [(initial_epoch, epochs, x)]
    merged = {}
    for first, last, inputs in calls:
        history = model.fit(inputs, y, initial_epoch=first, epochs=last, batch_size=batch_size,
                            validation_data=validation_data, validation_freq=validation_freq,
                            callbacks=list(callbacks), verbose=verbose)
        for key, values in history.history.items():
            merged.setdefault(key, []).extend(float(v) for v in values)
    return merged


def evaluate(model, x, y, batch_size):
    """The compiled loss and metrics on ``(x, y)``, as a dict of plain floats."""
    scores = model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
    return {key: float(value) for key, value in scores.items()}
