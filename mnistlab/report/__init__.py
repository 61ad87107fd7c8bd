"""The lab report: ``python -m mnistlab.report`` (``__main__``), a module per question group."""
