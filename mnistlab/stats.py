"""The few numbers every part reports the same way: percentages, mean and spread, wall time."""

import time

import numpy as np


def percent(fraction):
    """``0.9847`` as ``98.47%``; "–" for a number there is none of (a diverged run's)."""
    return "–" if fraction is None else f"{100 * fraction:.2f}%"


def mean_std(values):
    """The mean and the sample standard deviation (0 for a single value) of ``values``."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()), (float(values.std(ddof=1)) if values.size > 1 else 0.0)


class Stopwatch:
    def __init__(self):
        self.start = time.perf_counter()

    def seconds(self):
        return round(time.perf_counter() - self.start, 2)
