"""A script's start, before Keras loads: its flags, backend, data file and output folder
checked, so that --help and every such error answer at once and alone; then Keras on the
script's backend.

    keras = launch.keras(__name__, "mlp_mnist", __doc__)   # at the top of a script
"""

import os
import sys

from mnistlab import backend, data, exits, flags, lab, run


def keras(module_name, script, doc):
    """Keras on ``script``'s backend (``KERAS_BACKEND`` overrides it). Run from the terminal
    (``module_name == "__main__"``), the script's flags and inputs are checked first."""
    if module_name != "__main__":
        return backend.load(lab.SCRIPTS[script]["backend"])
    preflight(script, doc)
    keras = backend.load(lab.SCRIPTS[script]["backend"])
    print(f"Training on {backend.device()} ({keras.backend.backend()} backend)", flush=True)
    return keras


def preflight(script, doc, argv=None):
    """Read the flags, then check the backend, the data file and the output folder. Exits with
    code 2 on an error; returns nothing otherwise.

    From here on a stop is one line even while the libraries load, before ``exits.run`` takes over.
    """
    def check(argv):
        args = flags.parse(script, argv, doc)
        backend.choose(lab.SCRIPTS[script]["backend"])
        if data.resolve_source(args.data):  # a local file: check it now (the download needs Keras)
            data.load_mnist(args.data)
        run.Outputs(args.out)
        run.all_runs(args.out)  # the earlier runs' records, which this run may go on from
        return 0

    code = exits.run(check, argv, prog=f"{script}.py")
    if code:
        sys.exit(code)
    exits.stops_from_now(os.path.basename(sys.argv[0]))
