"""Seeding, compiling and fitting, shared so that every script trains the same fast way, and a
stopped fit goes on from its last finished epoch, exactly as if it had not stopped."""

import concurrent.futures
import dataclasses
import itertools
import math
import os
import pathlib
import shutil
import sys

import numpy as np

from mnistlab import backend, cli, internals, plots, records

keras = backend.load()  # quietly, whoever imports this module first

STEPS_PER_EXECUTION = 32  # batches per call into the backend: the same math, far less overhead a step

def set_seed(seed):
    """Seed Python, NumPy and the backend; on a CPU these models' kernels are deterministic already."""
    keras.utils.set_random_seed(seed)

def learning_rate(lr, schedule, total_steps):
    """``lr`` held constant, or (``"cosine"``) decayed along a cosine to 0 over ``total_steps``."""
    return keras.optimizers.schedules.CosineDecay(lr, decay_steps=total_steps) if schedule == "cosine" else lr

def compile_model(model, optimizer, loss, metrics=("accuracy",)):
    model.compile(optimizer=optimizer, loss=loss, metrics=list(metrics), steps_per_execution=STEPS_PER_EXECUTION)
    if backend.device().startswith("CPU"):  # where they were measured; on a GPU Keras's own ways stay
        if keras.backend.backend() == "jax":
            internals.scan_steps(model, STEPS_PER_EXECUTION)
        elif keras.backend.backend() == "tensorflow":
            internals.feed_untuned()
    return model

class BackupAndRestore(keras.callbacks.Callback):
    """After every epoch, ``save`` the history so far (``history``: before this fit), the weights and
    optimizer state in a file of that epoch's own, then the metadata naming it with NumPy's random
    state (Keras on JAX shuffles from it): restored, the fit goes on as if unstopped."""

    def __init__(self, folder, save, history):
        super().__init__()
        self.folder, self.restored = folder, False
        self.save, self.history = save, {key: list(values) for key, values in history.items()}

    def on_train_begin(self, logs=None):
        if not self.restored:  # a fit of one epoch per call (fresh noise) starts many times
            self.restored = restore(self.model, self.folder)

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history[key] = self.history.get(key, [])[:epoch] + [float(value)]
        self.save({key: list(values) for key, values in self.history.items()})
        # The weights and up to two optimizer slots per weight (Adam's), in float32, and the file's
        # own overhead, must fit: h5py cannot even close a file whose write failed half-way.
        probe = os.path.join(self.folder, f".room-check-{os.getpid()}")
        records.write_atomic(probe, lambda tmp: pathlib.Path(tmp).write_bytes(bytes(16 * self.model.count_params()
                                                                                    + 2**16)), what=f"in {self.folder}")
        os.remove(probe)
        name = f"epoch-{epoch + 1}.weights.h5"
        records.write_atomic(os.path.join(self.folder, name), self.model.save_weights)  # before the metadata naming it
        state = np.random.get_state(legacy=False)
        records.write_json(os.path.join(self.folder, "training_metadata.json"), {
            "epoch": epoch + 1, "weights": name, "shuffle": {"key": state["state"]["key"].tolist(),
                                                             "pos": state["state"]["pos"],
                                                             "has_gauss": state["has_gauss"], "gauss": state["gauss"]}})
        for other in os.listdir(self.folder):  # earlier epochs, and any write cut short
            if other.endswith(".weights.h5") and other != name:
                os.remove(os.path.join(self.folder, other))

def read_backup(folder):
    return records.read(os.path.join(folder, "training_metadata.json"), records.BACKUP_FIELDS, required=("epoch",))

def restore(model, folder):
    """Load the backup in ``folder``, if any, into ``model`` (compiled), and NumPy's random state."""
    metadata = read_backup(folder)
    if not metadata:
        return False
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)  # its slots, to load into
    path = os.path.join(folder, metadata.get("weights", "latest.weights.h5"))
    try:
        model.load_weights(path)
    except Exception as exc:  # only a file damaged after it was whole: a disk error, an edit
        raise cli.LabError(f"the training backup {path} cannot be read ({type(exc).__name__}); delete the folder "
                           f"{folder} to train this part afresh, then rerun the same command") from None
    if "shuffle" in metadata:
        shuffle = metadata["shuffle"]
        np.random.set_state({"bit_generator": "MT19937", "has_gauss": shuffle["has_gauss"], "gauss": shuffle["gauss"],
                             "state": {"key": np.array(shuffle["key"], dtype=np.uint32), "pos": shuffle["pos"]}})
    return True

class StopOnDivergence(keras.callbacks.Callback):
    """End the fit after the first epoch whose loss is not finite, saying so; a stop swallowed is raised."""

    def __init__(self, say):
        super().__init__()
        self.say = say

    def on_epoch_end(self, epoch, logs=None):
        cli.raise_pending()
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.model.stop_training = True
            if self.say:
                print(f"Epoch {epoch + 1}: the training loss became {float(loss)}: the training diverged "
                      "and stops here; try a smaller --lr", flush=True)

def fit(model, x, y, *, epochs, batch_size, validation_data=None, validation_freq=1, verbose=None,
        checkpoint=None):
    """``model.fit``'s history, ending at the first epoch whose loss is not finite; with a ``Checkpoint``,
    after the epochs done, each epoch backed up and recorded. ``x`` may be a function of the epoch."""
    verbose = (1 if sys.stdout.isatty() else 2) if verbose is None else verbose  # a bar in a terminal, a line in logs
    initial_epoch, merged, callbacks = 0, {}, [StopOnDivergence(say=verbose != 0)]
    if checkpoint:
        initial_epoch, merged = checkpoint.done, {key: list(values) for key, values in checkpoint.history.items()}
        callbacks = [BackupAndRestore(checkpoint.folder, checkpoint.save, merged), *callbacks]
        if initial_epoch >= epochs:  # no epoch left to train, so no fit whose callback restores it
            restore(model, checkpoint.folder)
    calls = (((epoch, epoch + 1, inputs) for epoch, inputs in made_ahead(x, range(initial_epoch, epochs)))
             if callable(x) else [(initial_epoch, epochs, x)])
    for first, last, inputs in calls:
        with internals.rows_fed(model, inputs, y, batch_size) as (fed, labels):
            history = model.fit(fed, labels, initial_epoch=first, epochs=last, batch_size=batch_size,
                                validation_data=validation_data, validation_freq=validation_freq,
                                callbacks=callbacks, verbose=verbose)
        for key, values in history.history.items():
            merged.setdefault(key, []).extend(float(v) for v in values)
        if records.diverged_at(merged):
            break
    return merged

def made_ahead(make, epochs):
    """``(epoch, make(epoch))`` for each of ``epochs``, the next one's made in a thread meanwhile."""
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        coming = None
        for epoch, following in itertools.zip_longest(epochs, epochs[1:]):
            inputs = coming.result() if coming else make(epoch)
            coming = thread.submit(make, following) if following is not None else None
            yield epoch, inputs

def evaluate(model, x, y, batch_size):
    """The compiled loss and metrics on ``(x, y)``, printed and returned as a dict of floats."""
    scores = {key: float(value) for key, value in model.evaluate(x, y, batch_size=batch_size, verbose=0,
                                                                 return_dict=True).items()}
    print("Test " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    return scores

@dataclasses.dataclass
class Checkpoint:
    """Where the fit of one record stands, and what its record says from the first epoch on."""
    done: int
    history: dict
    folder: str
    save: object
    first: dict
    clock: records.Stopwatch = dataclasses.field(default_factory=records.Stopwatch)

    def record(self, model, history, scores, *, examples):
        """The finished fit's record, timed from this checkpoint."""
        return {**self.first, "status": "complete", "history": history, "loss": plots.loss_name(model),
                "examples": examples, "layers": plots.layer_table(model), "parameters": model.count_params(),
                "wall_seconds": self.clock.seconds(), "diverged_at_epoch": records.diverged_at(history),
                **{f"test_{k}": v for k, v in scores.items()}}

def checkpoint(run, name, args):
    """Record ``name``'s fit in ``run``; a backup without its epochs' history starts afresh."""
    first = {"name": name, "environment": backend.environment()}
    folder = run.backup(name)
    done = read_backup(folder).get("epoch", 0)
    history = run.read_record(name).get("history", {}) if done else {}
    if done and history and all(len(values) >= done for values in history.values()):
        print(f"Resuming {name} in run {run.name} after epoch {done} of {args.epochs}", flush=True)
        history = {key: values[:done] for key, values in history.items()}
    else:
        shutil.rmtree(folder, ignore_errors=True)
        done, history = 0, {}
    os.makedirs(folder, exist_ok=True)

    def save(history):
        run.write_record(name, {**first, "status": f"running: {len(history)} epochs done", "history": history})
    return Checkpoint(done, history, folder, save, first)
