"""The lab report, written from a folder's own records: one section per question of the
handout, in its order, each answered with tables, figures and sentences computed from the
records in ``results/`` (and the figures in ``plots/``). Nothing in it is copied from an earlier
run: rerun with other flags, and the report describes that run, saying where it differs from
the lab's settings.

    python -m mnistlab.report [--out DIR]     # writes DIR/REPORT.md

``__main__`` puts it together from the sections of ``mlp`` (questions 1-2), ``cnn`` (3) and
``autoencoder`` (4), which compute from the records through ``common`` and take their fixed
prose from ``prose``.
"""
