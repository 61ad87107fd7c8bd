"""A stop (Ctrl-C, ``kill``, a closed terminal): the one list of stop signals, caught from a lab
command's first line, never lost (a stop that Python drops or a library swallows is raised
again), and how it ends a command: its one line and 128 + the signal.

Light on purpose: it loads at a command's first line, before anything else can be caught.
"""

import _thread
import contextlib
import functools
import os
import signal
import sys
import time

# Ctrl-C, kill, and a closed terminal, where the OS has them (Windows has no SIGHUP).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Stopped(KeyboardInterrupt):
    """A stop asked for by one of STOP_SIGNALS."""

    def __init__(self, signum=signal.SIGINT):
        super().__init__(signum)
        self.signum = signum


# The stops raised and not yet ended by ``run`` or the excepthook, with when they came: a stop
# that some code swallowed is raised again at the next ``raise_pending`` (an epoch's end, a
# part's start, the command's end).
_pending = []
# A stop raised again after being dropped waits this long (seconds): by then the main thread has
# left the garbage-collector callback or __del__ that dropped it.
AGAIN_AFTER = 0.05
# A second stop this soon after the first (seconds) is the same stop, delivered twice: Ctrl-C
# reaches a part of ``python -m mnistlab.lab`` from the terminal and again from the lab command.
SAME_STOP = 1.0


def _stop(signum, frame):
    if _pending and time.monotonic() - _pending[-1][1] < SAME_STOP:
        return
    _pending.append((signum, time.monotonic()))
    raise Stopped(signum)


def raise_pending():
    """Raise the stop that arrived and was swallowed (by a library's ``except``, or dropped as
    unraisable), if any: a stop never lets the run go on."""
    if _pending:
        raise Stopped(_pending[-1][0])


def ended(signum):
    """The stop has reached the top: nothing is pending any more."""
    _pending.clear()
    return signum


def _raise_again_later(signum):
    _pending[:] = [(signum, -SAME_STOP)]  # not the same stop delivered twice: the one that was dropped
    import threading  # here: loading it at the first line would widen the moment before stops are caught

    again = threading.Timer(AGAIN_AFTER, _thread.interrupt_main, (signum,))
    again.daemon = True
    again.start()


def _stop_dropped(previous_hook, unraisable):
    """``sys.unraisablehook``: Python drops an exception raised in a garbage-collector callback
    (JAX has one), a ``__del__`` or a weakref callback, after printing "Exception ignored in".
    A stop raised there is not printed but raised again in the main thread, once it has left
    that code; every other such exception is reported as before."""
    try:
        signum = stop_signal(unraisable.exc_value)
        if signum is None:
            return previous_hook(unraisable)
        _raise_again_later(signum)
    except KeyboardInterrupt as exc:  # the stop raised again while this ran
        _raise_again_later(stop_signal(exc))


@contextlib.contextmanager
def deferred():
    """Stops that arrive inside are noted, and the first raised once it ends: for what a stop
    must not cut short, as a C++ library's import (an exception crossing its code can abort the
    whole process, with no line) or a pool's workers while they start. In the main thread only
    (only it receives signals); a signal ignored stays ignored."""
    if main_thread_ident() != _thread.get_ident():
        yield
        return
    noted = []
    previous = {signum: signal.signal(signum, lambda signum, frame: noted.append(signum)) for signum in acted_on()}
    try:
        yield
    finally:
        restore_handlers(previous)
        if noted:
            signal.raise_signal(noted[0])


def main_thread_ident():
    """The main thread's id, without loading ``threading`` (not loaded: this is the main thread)."""
    threading = sys.modules.get("threading")
    return threading.main_thread().ident if threading else _thread.get_ident()


def catch_stops():
    """Stop signals raise Stopped from now on (but one ignored, under `nohup`, stays ignored),
    and a stop Python would drop is raised again. Returns the handlers replaced."""
    if getattr(sys.unraisablehook, "func", None) is not _stop_dropped:
        sys.unraisablehook = functools.partial(_stop_dropped, sys.unraisablehook)
    return {signum: signal.signal(signum, _stop) for signum in acted_on()}


def acted_on():
    """The stop signals this process acts on: all but those already ignored (`nohup`)."""
    return [signum for signum in STOP_SIGNALS if signal.getsignal(signum) not in (signal.SIG_IGN, None)]


def restore_handlers(previous):
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def stop_signal(exc):
    """The signal behind a stop: a KeyboardInterrupt, or an error raised because one arrived
    inside a C call (an import, a trace); None for any other error."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return getattr(exc, "signum", signal.SIGINT)
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def one_line(text):
    """``text`` on one line, whatever a path in it holds."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def stop_behind(exc):
    """The signal of the stop behind ``exc``: one it was raised by or while handling, or one that
    came before it and was swallowed (a stop inside an import that a library caught leaves the
    module half made, and the next import of it fails)."""
    signum = stop_signal(exc)
    if signum is None and _pending and not isinstance(exc, SystemExit):
        signum = _pending[-1][0]
    return signum


def stopped(prog, signum):
    print(one_line(f"{prog}: stopped ({signal.Signals(signum).name}); what had finished is saved, "
                   "rerun the same command to go on"), file=sys.stderr, flush=True)
    return 128 + signum


def exit_now(code):
    """End the process at once with ``code``, its output flushed and a stopped worker pool's
    semaphores released (lest the resource tracker warn)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if "multiprocessing.util" in sys.modules:
        sys.modules["multiprocessing.util"]._run_finalizers()
    os._exit(code)


def from_now(prog):
    """From here on a stop is one line and its exit code, even while the libraries load."""
    catch_stops()
    sys.excepthook = functools.partial(stopped_at_start, prog, sys.excepthook)


def stopped_at_start(prog, default_hook, kind, exc, traceback):
    """A stop while the script's modules load, outside ``run``: its one line and exit code."""
    signum = stop_behind(exc)
    if signum is None:
        return default_hook(kind, exc, traceback)
    exit_now(stopped(prog, ended(signum)))  # nothing has been made yet that an orderly exit would save
