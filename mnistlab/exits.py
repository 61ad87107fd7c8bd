"""How a lab command ends: one line and exit 2 for bad input or a failing environment, one line
and 128 + the signal for a stop, quietly for a closed pipe; the one list of stop signals.
"""

import _thread
import argparse
import atexit
import errno
import functools
import os
import signal
import sys
import threading
import time

from mnistlab.errors import LabError

# Ctrl-C, kill, and a closed terminal, where the OS has them (Windows has no SIGHUP).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
CLOSED_PIPE = 128 + getattr(signal, "SIGPIPE", 13)  # what a shell reports for `... | head -1`


class LabParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (with a pointer to --help) and exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}; see --help\n")


class Stopped(KeyboardInterrupt):
    """A stop asked for by one of STOP_SIGNALS."""

    def __init__(self, signum=signal.SIGINT):
        super().__init__(signum)
        self.signum = signum


# The stops raised and not yet ended by ``run`` or the excepthook, with when they came: a stop
# that some code swallowed is raised again at the next ``raise_pending`` (an epoch's end, a
# part's start or end, the command's end).
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


def _ended(signum):
    """The stop has reached the top: nothing is pending any more."""
    _pending.clear()
    return signum


def passed_on(stop):
    """``stop`` was handed to a child process, which says its line: it ends here. Returns its signal."""
    return _ended(stop.signum)


def _raise_again_later(signum):
    _pending[:] = [(signum, -SAME_STOP)]  # not the same stop delivered twice: the one that was dropped
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


def catch_stops():
    """Stop signals raise Stopped from now on, but a signal already ignored stays ignored:
    `nohup python mlp_mnist.py --study &` must survive its terminal closing; a stop that Python
    would drop is raised again. Returns the handlers replaced."""
    if getattr(sys.unraisablehook, "func", None) is not _stop_dropped:
        sys.unraisablehook = functools.partial(_stop_dropped, sys.unraisablehook)
    return {signum: signal.signal(signum, _stop) for signum in STOP_SIGNALS
            if signal.getsignal(signum) not in (signal.SIG_IGN, None)}


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


def os_error_hint(exc):
    """What to do about an OS error, by its cause: no room, no permission, something in the way."""
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG):
        return "free some space or pass --out to another folder, then rerun the same command"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "make it writable or pass --out to a folder you can write to, then rerun the same command"
    if exc.errno in (errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.ENOTEMPTY):
        return ("move aside what stands in the way (a folder where a file goes, or a file where a folder "
                "goes) or pass --out to another folder, then rerun the same command")
    return "check that folder or pass --out to another one, then rerun the same command"


def cannot_write(where, exc):
    """The LabError for an OS error while writing ``where``."""
    reason = " ".join(str(exc.strerror or exc).split())
    return LabError(f"cannot write {where} ({reason}); {os_error_hint(exc)}")


def error(prog, text):
    print(one_line(f"{prog}: error: {text}"), file=sys.stderr)
    return 2


def stopped(prog, signum):
    print(one_line(f"{prog}: stopped ({signal.Signals(signum).name}); what had finished is saved, "
                   "rerun the same command to go on"), file=sys.stderr, flush=True)
    return 128 + signum


def _pipe_closed():
    """The reader of stdout went away (``| head``): say nothing more, as command-line tools do.
    Later writes, and the interpreter's own flush at exit, go to nowhere instead of failing."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    return CLOSED_PIPE


def _usable_streams():
    """stdout closed (``>&-``) means nothing to show, not a crash; a path that is not valid in
    the terminal's encoding is printed escaped."""
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w")
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def _out_of_memory(exc):
    text = str(exc)
    return isinstance(exc, MemoryError) or "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


def run(main, argv=None, prog=None):
    """Call ``main(argv)`` under the error contract; returns the exit code."""
    prog = prog or (os.path.basename(sys.argv[0]) if argv is None else main.__module__ + ".py")
    _usable_streams()
    previous = catch_stops()
    try:
        try:
            code = main(argv)
            raise_pending()
            return code
        finally:  # what is still buffered goes now, so that a reader gone away is noticed here
            sys.stdout.flush()
    except BaseException as exc:
        return _ending(prog, exc)
    finally:
        restore_handlers(previous)


def _stop_behind(exc):
    """The signal of the stop behind ``exc``: one it was raised by or while handling, or one that
    came before it and was swallowed (a stop inside an import that a library caught leaves the
    module half made, and the next import of it fails)."""
    signum = stop_signal(exc)
    if signum is None and _pending and not isinstance(exc, SystemExit):
        signum = _pending[-1][0]
    return signum


def _ending(prog, exc):
    """The exit code of ``prog`` ended by ``exc``, its one line said; re-raises what the
    contract does not cover (a bug: its traceback is the report)."""
    signum = _stop_behind(exc)
    if signum is not None:
        return stopped(prog, _ended(signum))
    if isinstance(exc, LabError):
        return error(prog, str(exc))
    if isinstance(exc, BrokenPipeError) or (isinstance(exc, SystemExit) and isinstance(exc.__context__, BrokenPipeError)):
        return _pipe_closed()  # rich (Keras's layer table) ends a program whose reader went away with SystemExit
    if isinstance(exc, OSError):  # a full disk or a folder gone read-only under a library's own write
        return error(prog, str(cannot_write(exc.filename or "a file", exc)))
    if isinstance(exc, Exception) and _out_of_memory(exc):  # the backend's own error, whatever its class
        return error(prog, f"out of memory ({type(exc).__name__}); pass a smaller --batch-size or smaller "
                           "layers, or close other programs, then rerun the same command")
    raise exc


def exit_script(main, prog=None):
    """``sys.exit(run(main))`` for a lab command run from the terminal, but the process ends at
    once, its records already saved: tearing the interpreter down while the backend's own
    threads may still be computing can crash it (a segfault instead of the stop's exit code),
    and a stop while it tears down would meet the default handlers again (exit 143, no line).
    The exit functions a normal exit runs run here, where a stop still says its line."""
    prog = prog or os.path.basename(sys.argv[0])
    code = run(main, prog=prog)
    if code <= 128:
        for signum in catch_stops():
            signal.signal(signum, functools.partial(_stop_at_exit, prog))
        atexit._run_exitfuncs()
    exit_now(code)


def _stop_at_exit(prog, signum, frame):
    exit_now(stopped(prog, signum))


def exit_now(code):
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


def stops_from_now(prog):
    """From here on a stop is one line and its exit code, even while the libraries load, before
    ``run`` takes over."""
    catch_stops()
    sys.excepthook = functools.partial(stopped_at_start, prog, sys.excepthook)


def stopped_at_start(prog, default_hook, kind, exc, traceback):
    """A stop while the script's modules load, outside ``run``: its one line and exit code."""
    signum = _stop_behind(exc)
    if signum is None:
        return default_hook(kind, exc, traceback)
    exit_now(stopped(prog, _ended(signum)))  # nothing has been made yet that an orderly exit would save
