"""Command-line flags every lab script shares, input checks, and the error contract.

Bad input ends with one line on stderr naming the problem and the fix, and exit code 2.
"""

import argparse
import functools
import math
import os
import signal
import sys
import tempfile

from mnistlab import backend, data, parallel
from mnistlab.errors import LabError

# numpy's generators take seeds below 2**32; the scripts add small offsets (replicate, epoch,
# noise draw) to the seed, so the flag stops well short of that.
MAX_SEED = 2**31 - 1


class LabParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (with a pointer to --help) and exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}; see --help\n")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show each flag's default, except where there is none to show."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _checked(kind, what, accept, requirement):
    """An argparse ``type`` that parses a finite ``kind`` and requires ``accept(value)``."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be finite, got {text}")
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text}")
        return value
    return parse


positive_int = _checked(int, "a whole number", lambda v: v >= 1, "a positive whole number")
positive_float = _checked(float, "a number", lambda v: v > 0, "greater than 0")
non_negative_float = _checked(float, "a number", lambda v: v >= 0, "0 or more")
fraction = _checked(float, "a number", lambda v: 0 <= v <= 1, "a fraction in [0, 1]")
seed = _checked(int, "a whole number", lambda v: 0 <= v <= MAX_SEED, f"a whole number from 0 to {MAX_SEED}")


def make_parser(description, *, epochs, batch_size, lr, quick_note, lab_note="", epochs_help="training epochs"):
    """A parser with the common flags; the defaults passed in are the lab's values, and
    ``quick_note`` says what --quick trains."""
    parser = LabParser(
        description=description,
        epilog=lab_note,
        formatter_class=HelpFormatter,
    )
    common = parser.add_argument_group("common flags (every lab script)")
    common.add_argument("--data", metavar="PATH", default=None,
                        help="local Keras mnist.npz; if unset, the MNIST_NPZ environment variable, "
                             "else keras.datasets.mnist.load_data() (needs internet once)")
    common.add_argument("--out", metavar="DIR", default=None,
                        help="each run writes into its own folder DIR/runs/<script>-<date>-<time>-<flags>/ "
                             "(rerunning a stopped run's command goes on in it); once complete, its "
                             "figures are copied to DIR/plots and its numbers to DIR/results "
                             "(default: this folder, or ./quick with --quick)")
    common.add_argument("--epochs", type=positive_int, default=epochs, help=epochs_help)
    common.add_argument("--batch-size", type=positive_int, default=batch_size, help="minibatch size")
    common.add_argument("--lr", type=positive_float, default=lr, help="learning rate")
    common.add_argument("--seed", type=seed, default=0, help="random seed; the same seed gives the same numbers on CPU")
    common.add_argument("--quick", action="store_true",
                        help=f"a check that everything works, in seconds: {data_note()}; {quick_note}; "
                             "writes under ./quick unless --out is given")
    common.add_argument("--save-model", action="store_true", help="also write the trained model as a .keras file")
    return parser


def data_note():
    train, test = data.QUICK_SIZES
    return f"{train:,} training and {test:,} test digits instead of 60,000 and 10,000"


def physical_memory():
    """This machine's memory in bytes, or None where the OS does not say (Windows)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def dense_parameters(sizes):
    """Weights and biases of dense layers of ``sizes`` (784 inputs, ..., 10 outputs)."""
    return sum(n_in * n_out + n_out for n_in, n_out in zip(sizes, sizes[1:]))


def check_fits(parameters, what, flag):
    """Refuse at once a model whose weights, gradients and optimizer state (about four float32
    copies) cannot fit in this machine's memory, rather than after the backend tried."""
    need, have = 16 * parameters, physical_memory()
    if have and need > have:
        raise LabError(f"{what} would have {parameters:,} parameters, about {need / 2**30:,.0f} GiB with its "
                       f"gradients and optimizer state, more than this machine's {have / 2**30:,.0f} GiB "
                       f"of memory; pass smaller {flag}")


def _out_of_memory(exc):
    text = str(exc)
    return isinstance(exc, MemoryError) or "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


# Flags that say where a run reads and writes and on how many cores, not what it computes.
NOT_SETTINGS = ("data", "out", "workers")


def parse(parser, argv):
    """``parser.parse_args``, noting in ``args.changed`` each flag given another value than the
    lab's default, as ``"lr 0.05"`` (what run folders and comparisons are labelled by)."""
    args = parser.parse_args(argv)
    args.changed = [_describe_flag(dest, value) for dest, value in vars(args).items()
                    if dest not in NOT_SETTINGS and value != parser.get_default(dest)]
    args.out = args.out or ("quick" if args.quick else ".")
    if getattr(args, "workers", 0) is None:
        args.workers = 1 if args.quick else parallel.default_workers()
    return args


def _describe_flag(dest, value):
    name = dest.replace("_", "-")
    if value is True:
        return name
    values = value if isinstance(value, list) else [value]
    return name + " " + " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def add_workers_flag(group, what):
    """``--workers``: how many of ``what`` train side by side, each on its own core. A worker's
    start (a process and its backend) takes longer than a --quick training, so --quick trains
    them one after the other unless asked."""
    group.add_argument("--workers", type=positive_int, default=None,
                       help=f"{what} trained side by side, each single-threaded on its own CPU core "
                            "(each worker holds its own data and backend); 1 trains them one after "
                            f"the other on all cores (default: {parallel.default_workers()}, one per "
                            "core up to 4; 1 with --quick, whose trainings are shorter than a worker's start)")


class Outputs:
    """The run's output folders, checked writable before any training starts."""

    def __init__(self, root):
        self.root = root
        self.plots = os.path.join(root, "plots")
        self.results = os.path.join(root, "results")
        for folder in (self.plots, self.results):
            try:
                os.makedirs(folder, exist_ok=True)
                with tempfile.TemporaryFile(dir=folder):
                    pass
            except OSError as exc:
                raise LabError(f"cannot write to {folder} ({exc.strerror}); pass --out to a writable folder")

    def plot(self, name):
        return os.path.join(self.plots, name)

    def result(self, name):
        return os.path.join(self.results, name)


class Stopped(KeyboardInterrupt):
    """A stop asked for by a signal: Ctrl-C (SIGINT), ``kill`` (SIGTERM) or a closed terminal (SIGHUP)."""

    def __init__(self, signum=signal.SIGINT):
        super().__init__(signum)
        self.signum = signum


def _stop(signum, frame):
    raise Stopped(signum)


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def _stop_signal(exc):
    """The signal behind a stop: a KeyboardInterrupt, or an error raised because one arrived
    inside a C call (an import, a trace); None for any other error."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return getattr(exc, "signum", signal.SIGINT)
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _error(prog, text):
    print(one_line(f"{prog}: error: {text}"), file=sys.stderr)
    return 2


def _stopped(prog, signum):
    print(one_line(f"{prog}: stopped ({signal.Signals(signum).name}); what had finished is saved, "
                   "rerun the same command to go on"), file=sys.stderr, flush=True)
    return 128 + signum


def one_line(text):
    """``text`` on one line, whatever a path in it holds."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _usable_streams():
    """stdout closed (``>&-``) means nothing to show, not a crash; a path that is not valid in
    the terminal's encoding is printed escaped."""
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w")
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def _catch_stops():
    """Stop signals raise Stopped from now on, but a signal already ignored stays ignored:
    `nohup python mlp_mnist.py --study &` must survive its terminal closing. Returns the
    handlers replaced."""
    return {signum: signal.signal(signum, _stop) for signum in STOP_SIGNALS
            if signal.getsignal(signum) is not signal.SIG_IGN}


def run(main, argv=None, prog=None):
    """Call ``main(argv)``; turn LabError into one line and exit 2, and a stop (Ctrl-C, kill, a
    closed terminal) into a line saying what was kept and exit code 128 + the signal's number."""
    prog = prog or (os.path.basename(sys.argv[0]) if argv is None else main.__module__ + ".py")
    _usable_streams()
    previous = _catch_stops()
    try:
        return main(argv)
    except LabError as exc:
        return _error(prog, str(exc))
    except OSError as exc:  # a full disk or a folder gone read-only under a library's own write
        where = f" ({exc.filename})" if exc.filename else ""
        reason = " ".join(str(exc.strerror or exc).split())
        return _error(prog, f"cannot write{where}: {reason}; free some space or pass --out to another "
                            "folder, then rerun the same command")
    except (KeyboardInterrupt, SystemError) as exc:
        signum = _stop_signal(exc)
        if signum is None:
            raise
        return _stopped(prog, signum)
    except Exception as exc:  # the backend's own out-of-memory error, whatever its class
        if not _out_of_memory(exc):
            raise
        return _error(prog, f"out of memory ({type(exc).__name__}); pass a smaller --batch-size or smaller "
                            "layers, or close other programs, then rerun the same command")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def exit_script(main):
    """``sys.exit(run(main))`` for a script run from the terminal. After a stop, the process
    ends at once, its records already saved: tearing the interpreter down while the backend's
    own threads may still be computing can crash it (a segfault instead of the stop's exit code)."""
    code = run(main)
    if code > 128:
        _exit_now(code)
    sys.exit(code)


def _exit_now(code):
    """End the process at once with ``code``, what it printed flushed, and a stopped worker
    pool's semaphores released (as a normal exit would, lest the resource tracker warn)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if "multiprocessing.util" in sys.modules:
        sys.modules["multiprocessing.util"]._run_finalizers()
    os._exit(code)


def preflight(parse_args, default_backend, argv=None):
    """For a script run from the terminal, before Keras loads: read the flags, then check the
    backend, the data file and the output folder, so that --help and every such error answer
    at once and alone. Exits with code 2 on an error; returns nothing otherwise.

    From here on a stop is one line even while the libraries load, before ``run`` takes over.
    """
    from mnistlab import runs

    def check(argv):
        args = parse_args(argv)
        backend.choose(default_backend)
        if data.resolve_source(args.data):  # a local file: check it now (the download needs Keras)
            data.load_mnist(args.data)
        Outputs(args.out)
        runs.all_runs(args.out)  # the earlier runs' records, which this run may go on from
        return 0

    code = run(check, argv)
    if code:
        sys.exit(code)
    _catch_stops()
    sys.excepthook = functools.partial(_stopped_at_start, os.path.basename(sys.argv[0]), sys.excepthook)


def _stopped_at_start(prog, default_hook, kind, exc, traceback):
    """A stop while the script's modules load, outside ``run``: its one line and exit code."""
    signum = _stop_signal(exc)
    if signum is None:
        return default_hook(kind, exc, traceback)
    _exit_now(_stopped(prog, signum))  # nothing has been made yet that an orderly exit would save
