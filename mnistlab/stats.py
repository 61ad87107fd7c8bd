"""The few numbers every part reports the same way: percentages, mean and spread, divergence, wall time."""

import math
import time

import numpy as np


def percent(fraction):
    """``0.9847`` as ``98.47%``; "–" for a number there is none of (a diverged run's)."""
    return "–" if fraction is None else f"{100 * fraction:.2f}%"


def mean_std(values):
    """The mean and the sample standard deviation (0 for a single value) of ``values``."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()), (float(values.std(ddof=1)) if values.size > 1 else 0.0)


def diverged_at(history):
    """The first epoch (from 1) whose training loss is not a finite number, or None."""
    return next((epoch for epoch, loss in enumerate(history.get("loss", []), 1)
                 if loss is None or not math.isfinite(loss)), None)


def fmt_seconds(seconds):
    return "–" if seconds is None else f"{seconds:,.0f} s"


class Stopwatch:
    def __init__(self):
        self.start = time.perf_counter()

    def seconds(self):
        return round(time.perf_counter() - self.start, 2)
