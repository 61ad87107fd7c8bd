"""A lab script's start, before Keras loads: a stop is one line from its first instant, the
libraries' start-up lines are held back, and the script's flags, backend, data file and output
folder are checked, so that --help and every such error answer at once and alone; then Keras on
the script's backend.

    keras = launch.keras(__name__, "mlp_mnist", __doc__)   # at the top of a script

Only ``stops`` loads with this module: the others wait until a stop is caught.
"""

import sys

from mnistlab import stops


def keras(module_name, script, doc):
    """Keras on ``script``'s backend (``KERAS_BACKEND`` overrides it). Run from the terminal
    (``module_name == "__main__"``), stops and the libraries' start-up lines are caught and the
    script's flags and inputs checked first; imported, nothing global changes."""
    terminal = module_name == "__main__"
    if terminal:
        stops.from_now(f"{script}.py")
    from mnistlab import backend, lab

    if terminal:
        backend.quiet_imports()
        preflight(script, doc)
    keras = backend.load(lab.SCRIPTS[script]["backend"])
    if terminal:
        print(f"Training on {backend.device()} ({keras.backend.backend()} backend)", flush=True)
    return keras


def preflight(script, doc):
    """Read the flags, then check the backend, the data file and the output folder (exit 2)."""
    from mnistlab import backend, data, exits, files, flags, lab, records

    def check(argv):
        args = flags.parse_ahead(script, argv, doc)
        backend.choose(lab.SCRIPTS[script]["backend"])
        if data.resolve_source(args.data):  # a local file: check it now (the download needs Keras)
            data.load_mnist(args.data)
        files.Outputs(args.out)
        records.all_runs(args.out)  # the earlier runs' records, which this run may go on from
        return 0

    code = exits.run(check, prog=f"{script}.py")
    if code:
        sys.exit(code)
