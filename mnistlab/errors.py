"""The one exception the lab scripts raise for bad input: a one-line message and exit code 2."""


class LabError(Exception):
    """Bad input or environment; the message names the problem and the fix, on one line."""
