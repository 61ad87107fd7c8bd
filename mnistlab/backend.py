"""The Keras backend a script runs on: chosen and checked before Keras is imported, then
imported without the backends' start-up chatter.

Set MNISTLAB_LOGS=1 to see TensorFlow's, absl's and XLA's start-up lines again when debugging.
"""

import contextlib
import importlib.util
import logging
import os
import re
import sys
import tempfile

from mnistlab.errors import LabError

# The backends that can train, and the pip package that adds each.
TRAINING_BACKENDS = {"jax": "jax[cpu]", "tensorflow": "tensorflow-cpu", "torch": "torch"}
INFERENCE_ONLY = ("numpy", "openvino")
# Start-up lines of TensorFlow, absl and XLA: glog-style "I0000 00:00:..." lines and their kin.
CHATTER = re.compile(r"^(WARNING: All log messages before absl::InitializeLog|[IWE]\d{4} \d\d:\d\d:"
                     r"|To enable the following instructions:|oneDNN custom operations are on)")


def choose(default):
    """Use the ``KERAS_BACKEND`` environment variable if set, else ``default``; return its name.

    Raises LabError, naming the fix, for a backend that does not exist, cannot train, or is not
    installed. Off TensorFlow, Keras is also kept from importing TensorFlow, as on a machine
    without it: the first time it serialises a layer (a model diagram, a saved model) it would
    import all of TensorFlow (1.7 s, 0.4 GB in every process, two log lines) only to ask whether
    an object is a tf.TensorShape.
    """
    name = os.environ.setdefault("KERAS_BACKEND", default)
    usable = ", ".join(sorted(TRAINING_BACKENDS))
    if name in INFERENCE_ONLY:
        raise LabError(f"KERAS_BACKEND={name} cannot train models; set it to one of {usable}, or unset it")
    if name not in TRAINING_BACKENDS:
        raise LabError(f"KERAS_BACKEND={name} is not a Keras backend; set it to one of {usable}, or unset it")
    if importlib.util.find_spec(name) is None:
        raise LabError(f"KERAS_BACKEND={name}, but {name} is not installed; "
                       f"pip install {TRAINING_BACKENDS[name]}, or unset KERAS_BACKEND to use {default}")
    if name != "tensorflow" and "tensorflow" not in sys.modules:
        sys.modules["tensorflow"] = None  # `import tensorflow` now raises ImportError
    return name


def load(default):
    """Choose the backend, then import and return Keras, its start-up chatter left out."""
    choose(default)
    with quiet_start():
        import keras
    return keras


@contextlib.contextmanager
def quiet_start():
    """Hold back what the C++ libraries write to stderr while they start, then pass on every
    line but their start-up chatter (so a real error still shows)."""
    if os.environ.get("MNISTLAB_LOGS") == "1":
        yield
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # e.g. tf.function retracing notes
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            for line in held.read().decode(errors="replace").splitlines():
                if line.strip() and not CHATTER.match(line):
                    print(line, file=sys.stderr)
