"""Shared code for the Keras MNIST lab scripts: data, noise, training, plots, results, CLI."""

from mnistlab import backend as _backend

# Before anything of the package can import Keras, TensorFlow or JAX: their start-up lines are
# held back whichever module imports them first.
_backend.quiet_imports()
