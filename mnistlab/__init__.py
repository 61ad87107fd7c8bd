"""Shared code for the Keras MNIST lab scripts: data, noise, training, plots, results, CLI.

Importing it changes nothing global: a lab command's entry calls ``launch.keras`` (a script)
or ``stops.from_now`` at its first line.
"""
