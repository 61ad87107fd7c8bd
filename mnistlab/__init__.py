"""Shared code for the Keras MNIST lab scripts: their start, data, training, figures, runs and
report. Importing it changes nothing global: a command's first line (``flags.start`` in a
script, ``cli.from_now`` in the others) catches its stops."""
