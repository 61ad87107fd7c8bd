"""Seeding, compiling and fitting, shared so that every script trains the same fast way, and a
stopped fit goes on from its last finished epoch."""

import concurrent.futures
import contextlib
import dataclasses
import functools
import itertools
import math
import os
import shutil
import sys

import numpy as np

from mnistlab import backend, files, plots, records, stats, stops
from mnistlab.errors import LabError

keras = backend.imported_keras()

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
    if backend.on_cpu():  # where these were measured; on a GPU Keras's own ways stay
        if keras.backend.backend() == "jax":
            model.train_function = scanned_steps(model, STEPS_PER_EXECUTION)
        if keras.backend.backend() == "tensorflow":
            feed_untuned()
    return model


@functools.cache  # once a process
def feed_untuned():
    """On TensorFlow, tf.data's autotuning off in the pipelines Keras makes from arrays: with it
    on, most epochs' first call waited seconds, the CPU idle, as the last epoch's pipeline ended
    (bench/README.md). A gather of rows needs no tuning: the same batches in the same order.
    Every fit, evaluation and prediction after it is fed so."""
    import tensorflow as tf

    try:  # Keras's own class (tests/test_cnn.py checks it is there); another Keras only feeds slower
        from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter
    except ImportError:
        return
    tuned = ArrayDataAdapter.get_tf_dataset

    def get_tf_dataset(self):
        options = tf.data.Options()
        options.autotune.enabled = False
        return tuned(self).with_options(options)
    ArrayDataAdapter.get_tf_dataset = get_tf_dataset


def scanned_steps(model, count):
    """A train function for ``model`` on JAX that runs ``count`` batches as one compiled call
    (``lax.scan`` of Keras's own step over them, stacked in the call), where Keras's calls the
    compiled step once a batch: the same steps in the same order, the same weights, less time
    between them (bench/README.md). A group of batches of unequal shapes (an epoch's last) goes
    step by step. On a CPU, where it was measured. While ``rows_fed`` has handed it its arrays,
    each batch is the numbers of its rows, gathered from them inside the call."""
    import jax
    from keras.src import tree

    def step(state, rows, batch):
        return model.train_step(state, batch if rows is None else tuple(part[batch] for part in rows))

    def scan(state, rows, batches):
        stacked = jax.tree.map(lambda *parts: jax.numpy.stack(parts), *batches)
        state, logs = jax.lax.scan(lambda state, batch: step(state, rows, batch)[::-1], state, stacked)
        return jax.tree.map(lambda values: values[-1], logs), state
    many, one = jax.jit(scan, donate_argnums=0), jax.jit(step, donate_argnums=0)

    def function(state, iterator):
        batches = list(itertools.islice(iterator, count))
        if not batches:
            raise StopIteration
        if len(batches) == count and len({tuple(np.shape(x) for x in tree.flatten(b)) for b in batches}) == 1:
            return many(state, function.rows, batches)
        for batch in batches:
            logs, state = one(state, function.rows, batch)
        return logs, state
    function.rows = None
    return function


@contextlib.contextmanager
def rows_fed(model, x, y, batch_size):
    """What ``model.fit`` is handed for ``(x, y)``: with ``scanned_steps`` on NumPy arrays, the
    numbers of their rows, which Keras shuffles and slices as it would the rows, while the train
    function gathers the rows from ``x`` and ``y``, handed to the backend once for the fit
    (without a copy where ``data.aligned``): the same batches for less work a batch
    (bench/README.md). Otherwise ``(x, y)`` themselves."""
    try:  # Keras's own class (tests/test_mlp.py checks it is there); another Keras is fed the rows
        from keras.src.backend.jax.trainer import JAXEpochIterator
    except ImportError:
        JAXEpochIterator = None
    train = model.train_function
    if not (JAXEpochIterator and hasattr(train, "rows") and hasattr(model, "_symbolic_build")
            and isinstance(x, np.ndarray) and isinstance(y, np.ndarray)):
        yield x, y
        return
    import jax

    # Keras's fit builds a new model's metrics from the first batch of an epoch it shuffles for
    # that alone: built here from the rows themselves, by the same draw of NumPy's random state.
    model._symbolic_build(iterator=JAXEpochIterator(x, y, batch_size=batch_size, shuffle=True,
                                                     steps_per_execution=model.steps_per_execution))
    train.rows = (jax.device_put(x), jax.device_put(y))
    try:
        yield np.arange(len(x), dtype=np.int32), None
    finally:
        train.rows = None


def verbosity():
    """A live progress bar in a terminal; one line per epoch in logs and CI."""
    return 1 if sys.stdout.isatty() else 2


class SaveProgress(keras.callbacks.Callback):
    """Hand ``save`` the history so far (after ``history``, the epochs before this fit) after
    every epoch; an epoch trained again replaces its earlier entry."""

    def __init__(self, save, history):
        super().__init__()
        self.save, self.history = save, {key: list(values) for key, values in history.items()}

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history[key] = self.history.get(key, [])[:epoch] + [float(value)]
        self.save({key: list(values) for key, values in self.history.items()})


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras's BackupAndRestore, safe to kill at any instant and kept until the caller deletes
    it (a fit of one epoch per call, on fresh noise, must keep it between calls).

    Keras rewrites one weights file in place: a kill during that write leaves a backup that
    never loads. Here each epoch's weights go to a file of their own, which the metadata (one
    step) names only once it is whole. The metadata also keeps NumPy's global random state,
    from which Keras on JAX shuffles: a resumed fit shuffles as the unstopped one would.
    """

    def __init__(self, folder):
        super().__init__(folder, delete_checkpoint=False)
        self.loaded = False

    def _save_model(self):
        # The weights and up to two optimizer slots per weight (Adam's), in float32, and the
        # file's own overhead: h5py cannot even close a file whose write failed half-way.
        files.check_room(self.backup_dir, 4 * 4 * self.model.count_params() + 2**16)
        name = f"epoch-{self._current_epoch}.weights.h5"
        self.model.save_weights(os.path.join(self.backup_dir, name), overwrite=True)
        files.write_json(self._training_metadata_path, {"epoch": self._current_epoch, "batch": self._last_batch_seen,
                                                         "weights": name, "shuffle": shuffle_state()})
        for other in os.listdir(self.backup_dir):  # earlier epochs, and any write cut short
            if other.endswith(".weights.h5") and other != name:
                os.remove(os.path.join(self.backup_dir, other))

    def _load_model(self):
        first, self.loaded = not self.loaded, True
        metadata = records.read_backup(self.backup_dir)
        if metadata is None:
            return
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)  # its slots, to load into
        path = os.path.join(self.backup_dir, metadata.get("weights", "latest.weights.h5"))
        try:
            self.model.load_weights(path)
            if first and "shuffle" in metadata:  # a fit of one epoch per call loads at every call
                set_shuffle_state(metadata["shuffle"])
        except Exception as exc:  # only a file damaged after it was whole: a disk error, an edit
            raise LabError(f"the training backup {path} cannot be read ({type(exc).__name__}); "
                           f"delete the folder {self.backup_dir} to train this part afresh, "
                           "then rerun the same command") from None
        self.model._initial_epoch = metadata["epoch"]


def shuffle_state():
    """NumPy's global random state (the legacy generator's), as JSON."""
    state = np.random.get_state(legacy=False)
    return {"key": state["state"]["key"].tolist(), "pos": state["state"]["pos"],
            "has_gauss": state["has_gauss"], "gauss": state["gauss"]}


def set_shuffle_state(saved):
    np.random.set_state({"bit_generator": "MT19937", "state": {"key": np.array(saved["key"], dtype=np.uint32),
                                                               "pos": saved["pos"]},
                         "has_gauss": saved["has_gauss"], "gauss": saved["gauss"]})


def restore(model, folder):
    """Load the backup in ``folder`` into ``model`` (compiled): a stopped fit with no epoch left."""
    callback = BackupAndRestore(folder)
    callback.set_model(model)
    callback._load_model()


class StopOnDivergence(keras.callbacks.Callback):
    """End the fit after the first epoch whose loss is not finite, saying so once: every later
    epoch would only carry the NaN on."""

    def __init__(self, say):
        super().__init__()
        self.say = say

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.model.stop_training = True
            if self.say:
                print(f"Epoch {epoch + 1}: the training loss became {float(loss)}: the training diverged "
                      "and stops here; try a smaller --lr", flush=True)


def fit(model, x, y, *, epochs, batch_size, validation_data=None, validation_freq=1, verbose=None,
        checkpoint=None):
    """``model.fit``; returns the per-epoch history as a dict of lists, ending after the first
    epoch whose loss is not finite. With a ``Checkpoint`` it goes on after the epochs done
    (their history first), backs up each epoch and records its progress. ``x`` may be a
    function of the epoch that gives its inputs (fresh noise every epoch: one ``fit`` call each).
    """
    verbose = verbosity() if verbose is None else verbose
    initial_epoch, before, callbacks = 0, {}, []
    if checkpoint:
        initial_epoch, before = checkpoint.done, checkpoint.history
        callbacks = [SaveProgress(checkpoint.save, before), BackupAndRestore(checkpoint.folder)]
        if initial_epoch >= epochs:  # no epoch left to train, so no fit whose callback restores it
            restore(model, checkpoint.folder)
    if callable(x):
        calls = ((epoch, epoch + 1, inputs) for epoch, inputs in made_ahead(x, range(initial_epoch, epochs)))
    else:
        calls = [(initial_epoch, epochs, x)]
    callbacks += [StopOnDivergence(say=verbose != 0),
                  keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: stops.raise_pending())]
    merged = {key: list(values) for key, values in before.items()}
    for first, last, inputs in calls:
        with rows_fed(model, inputs, y, batch_size) as (fed, labels):
            history = model.fit(fed, labels, initial_epoch=first, epochs=last, batch_size=batch_size,
                                validation_data=validation_data, validation_freq=validation_freq,
                                callbacks=callbacks, verbose=verbose)
        for key, values in history.history.items():
            merged.setdefault(key, []).extend(float(v) for v in values)
        if stats.diverged_at(merged):
            break
    return merged


def made_ahead(make, epochs):
    """``(epoch, make(epoch))`` for each of ``epochs``, the next epoch's made in a thread while
    the caller trains on this one's (NumPy's noise releases the GIL): two epochs' inputs in
    memory at a time, not the whole run's."""
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        coming = None
        for epoch, following in itertools.zip_longest(epochs, epochs[1:]):
            inputs = coming.result() if coming else make(epoch)
            coming = thread.submit(make, following) if following is not None else None
            yield epoch, inputs


def evaluate(model, x, y, batch_size):
    """The compiled loss and metrics on ``(x, y)``, printed and returned as a dict of floats."""
    scores = model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
    scores = {key: float(value) for key, value in scores.items()}
    print("Test " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    return scores


def fit_record(first, model, history, scores, *, examples, layers, wall_seconds):
    """A finished fit's record (``layers`` as ``plots.layer_table`` gives them)."""
    return {**first, "status": "complete", "history": history, "loss": plots.loss_name(model), "examples": examples,
            "layers": layers, "parameters": model.count_params(), "wall_seconds": wall_seconds,
            "diverged_at_epoch": stats.diverged_at(history), **{f"test_{k}": v for k, v in scores.items()}}


def first_fields(name, args):
    """What a record says from its first epoch on: its name, the flags, and the environment."""
    return {"name": name, "config": vars(args), "environment": backend.environment()}


@dataclasses.dataclass
class Checkpoint:
    """Where the fit of one record stands: the epochs done and their history, its Keras backup's
    folder, ``save(history)`` after each epoch, and the record's ``first_fields``."""
    done: int
    history: dict
    folder: str
    save: object
    first: dict
    clock: stats.Stopwatch = dataclasses.field(default_factory=stats.Stopwatch)

    def record(self, model, history, scores, *, examples, layers):
        """The finished fit's record (``fit_record``), timed from this checkpoint."""
        return fit_record(self.first, model, history, scores, examples=examples, layers=layers,
                          wall_seconds=self.clock.seconds())


def checkpoint(run, name, args):
    """The ``Checkpoint`` of record ``name``'s fit of ``args.epochs`` in ``run`` (a ``run.Run``);
    a backup without the history of its epochs is dropped, and the fit starts afresh."""
    epochs, first = args.epochs, first_fields(name, args)
    metadata = records.read_backup(run.backup(name))
    done = metadata["epoch"] if metadata else 0
    history = run.read_record(name).get("history", {}) if done else {}
    if done and history and all(len(values) >= done for values in history.values()):
        print(f"Resuming {name} in run {run.name} after epoch {done} of {epochs}", flush=True)
        history = {key: values[:done] for key, values in history.items()}
    else:
        shutil.rmtree(run.backup(name), ignore_errors=True)
        done, history = 0, {}

    def save(history):
        run.write_record(name, {**first, "status": f"running: {len(history)} epochs done", "history": history})
    return Checkpoint(done, history, run.backup(name), save, first)
