"""A lab command's start, before Keras loads: a stop is one line from its first instant, the
libraries' start-up lines are held back, and a script's flags, backend, data file and output
folder are checked, so that --help and every such error answer at once and alone; then Keras on
the script's backend.

    keras = launch.keras(__name__, "mlp_mnist", __doc__)   # at the top of a script

Only ``stops`` loads with this module: the others wait until a stop is caught.
"""

import sys

from mnistlab import stops


def command(module_name, prog):
    """From here on, in a lab command run from the terminal (``module_name == "__main__"``), a
    stop is its one line, and Keras, TensorFlow and JAX load quietly whoever imports them.
    Imported (by a test, a notebook, a pool worker), it does nothing."""
    if module_name == "__main__":
        stops.from_now(prog)
        from mnistlab import backend

        backend.quiet_imports()


def keras(module_name, script, doc):
    """Keras on ``script``'s backend (``KERAS_BACKEND`` overrides it). Run from the terminal
    (``module_name == "__main__"``), the script's flags and inputs are checked first."""
    command(module_name, f"{script}.py")
    from mnistlab import backend, lab

    if module_name == "__main__":
        preflight(script, doc)
    keras = backend.load(lab.SCRIPTS[script]["backend"])
    if module_name == "__main__":
        print(f"Training on {backend.device()} ({keras.backend.backend()} backend)", flush=True)
    return keras


def preflight(script, doc, argv=None):
    """Read the flags, then check the backend, the data file and the output folder. Exits with
    code 2 on an error; returns nothing otherwise."""
    from mnistlab import backend, data, exits, files, flags, lab, records

    def check(argv):
        args = flags.parse_ahead(script, argv, doc)
        backend.choose(lab.SCRIPTS[script]["backend"])
        if data.resolve_source(args.data):  # a local file: check it now (the download needs Keras)
            data.load_mnist(args.data)
        files.Outputs(args.out)
        records.all_runs(args.out)  # the earlier runs' records, which this run may go on from
        return 0

    code = exits.run(check, argv, prog=f"{script}.py")
    if code:
        sys.exit(code)
