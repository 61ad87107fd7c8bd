"""The Keras backend a script runs on, chosen before Keras is imported."""

import os
import sys


def choose(default):
    """Use the ``KERAS_BACKEND`` environment variable if set, else ``default``.

    Off TensorFlow, Keras is also kept from importing TensorFlow, as on a machine without it:
    the first time it serialises a layer (a model diagram, a saved model) it would import all of
    TensorFlow (1.7 s, 0.4 GB in every process, two log lines) only to ask whether an object is
    a tf.TensorShape.
    """
    os.environ.setdefault("KERAS_BACKEND", default)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TensorFlow's C++ start-up chatter
    if os.environ["KERAS_BACKEND"] != "tensorflow" and "tensorflow" not in sys.modules:
        sys.modules["tensorflow"] = None  # `import tensorflow` now raises ImportError
    return os.environ["KERAS_BACKEND"]
