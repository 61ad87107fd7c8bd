"""Shared code for the Keras MNIST lab scripts: data, noise, training, plots, results, CLI."""
