"""Where the project reaches into Keras's private parts, each for a whole command measured at
least 1.1x faster with it, side by side (``bench/internals.py``, its figures in bench/README.md),
and nowhere else; a Keras without them gives the same numbers, only slower.

- ``keep_tensorflow_out``: off TensorFlow, Keras's lazy handle on TensorFlow (``keras.src``) is
  told it is not there; Keras would otherwise import all of it the first time it seeds,
  describes or saves a layer: ``mlp_mnist.py --quick`` 1.46-1.61x.
- ``feed_untuned``: on TensorFlow on a CPU, the ``get_tf_dataset`` of Keras's array pipeline
  (``keras.src``'s ``ArrayDataAdapter``) replaced by one with tf.data's autotuning off: most epochs
  no longer begin with seconds of idle waiting; ``cnn_mnist.py`` 1.28-1.31x.
"""

import functools

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
