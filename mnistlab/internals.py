"""Where the project reaches into Keras's private parts, each for a whole command measured at
least 1.1x faster with it, side by side (``bench/internals.py``, its figures in bench/README.md),
and nowhere else; a Keras without them gives the same numbers, only slower.

- ``keep_tensorflow_out``: off TensorFlow, Keras's lazy handle on TensorFlow (``keras.src``) is
  told it is not there; Keras would otherwise import all of it the first time it seeds,
  describes or saves a layer: ``mlp_mnist.py --quick`` 1.46-1.61x.
- ``feed_untuned``: on TensorFlow on a CPU, the ``get_tf_dataset`` of Keras's array pipeline
  (``keras.src``'s ``ArrayDataAdapter``) replaced by one with tf.data's autotuning off: most epochs
  no longer begin with seconds of idle waiting; ``cnn_mnist.py`` 1.28-1.31x.
- ``scan_steps`` and ``rows_fed``, one gain: on JAX on a CPU, ``model.train_function`` set to a
  ``lax.scan`` of Keras's own ``train_step`` over 32 batches, each gathered from the arrays inside
  the compiled call (``keras.src``'s ``JAXEpochIterator`` and ``model._symbolic_build`` draw
  Keras's shuffle): the same weights to the bit; ``denoise_autoencoder.py`` at the lab's flags
  1.13-1.25x on a CPU with AVX2 only (1.07-1.09x with AVX-512), the study's command 1.04-1.06x.
"""

import contextlib
import functools
import itertools

import numpy as np

def keep_tensorflow_out():
    from keras.src.utils import module_utils

    handle = getattr(module_utils, "tensorflow", None)
    if handle is not None and handle.module is None:
        handle._available = False

@functools.cache  # once a process: every fit, evaluation and prediction after it is fed so
def feed_untuned():
    import tensorflow as tf

    try:
        from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter
    except ImportError:
        return
    tuned = ArrayDataAdapter.get_tf_dataset

    def get_tf_dataset(self):
        options = tf.data.Options()
        options.autotune.enabled = False  # a gather of rows needs no tuning: the same batches in the same order
        return tuned(self).with_options(options)
    ArrayDataAdapter.get_tf_dataset = get_tf_dataset

def scan_steps(model, count):
    """``count`` batches a compiled call (an epoch's last, of unequal shapes, step by step); while
    ``rows_fed`` has handed it arrays, each batch is its rows' numbers, gathered inside the call."""
    import jax

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
        if len(batches) == count and len({tuple(np.shape(x) for x in jax.tree.leaves(b)) for b in batches}) == 1:
            return many(state, function.rows, batches)
        for batch in batches:
            logs, state = one(state, function.rows, batch)
        return logs, state
    function.rows = None
    model.train_function = function

@contextlib.contextmanager
def rows_fed(model, x, y, batch_size):
    """What ``model.fit`` is handed: with ``scan_steps`` on arrays, their rows' numbers, which Keras
    shuffles as it would the rows, and the arrays themselves go to the backend once, for the fit."""
    try:
        from keras.src.backend.jax.trainer import JAXEpochIterator
    except ImportError:
        JAXEpochIterator = None
    train = model.train_function
    if not (JAXEpochIterator and hasattr(train, "rows") and hasattr(model, "_symbolic_build")
            and isinstance(x, np.ndarray) and isinstance(y, np.ndarray)):
        yield x, y
        return
    import jax

    # Keras's fit builds the metrics from a batch it shuffles for that alone: here, by the same draw.
    model._symbolic_build(iterator=JAXEpochIterator(x, y, batch_size=batch_size, shuffle=True,
                                                     steps_per_execution=model.steps_per_execution))
    train.rows = (jax.device_put(x), jax.device_put(y))
    try:
        yield np.arange(len(x), dtype=np.int32), None
    finally:
        train.rows = None
