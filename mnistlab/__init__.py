"""Shared code for the Keras MNIST lab scripts: data, noise, training, plots, results, CLI."""

from mnistlab import exits as _exits

# A lab command stops with one line from its first instant, even while its libraries load.
_command = _exits.lab_command()
if _command:
    _exits.stops_from_now(_command)

from mnistlab import backend as _backend  # noqa: E402 (after the stops: it starts the imports)

# Before anything of the package can import Keras, TensorFlow or JAX: their start-up lines are
# held back whichever module imports them first.
_backend.quiet_imports()
