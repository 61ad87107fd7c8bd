"""How a lab command ends: one line and exit 2 for bad input or a failing environment
(``LabError``), a stop's line and 128 + the signal (caught from the first line, raised again where
dropped or swallowed), quietly for a closed pipe. The standard library only: it loads at a first line.
"""

import _thread
import argparse
import atexit
import contextlib
import errno
import functools
import os
import signal
import sys
import time

# Ctrl-C, kill, and a closed terminal, where the OS has them (Windows has no SIGHUP).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
CLOSED_PIPE = 128 + getattr(signal, "SIGPIPE", 13)  # what a shell reports for `... | head -1`
# A stop raised again after Python dropped it waits this long (s), until the main thread has left
# the garbage-collector callback or __del__ that dropped it; a second stop this soon after the
# first (s) is the same one delivered twice (to a part of the whole lab and to the lab command).
AGAIN_AFTER, SAME_STOP = 0.05, 1.0

class LabError(Exception):
    """Bad input or environment; the message names the problem and the fix, on one line."""

class Stopped(KeyboardInterrupt):
    def __init__(self, signum=signal.SIGINT):
        super().__init__(signum)
        self.signum = signum

class LabParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (with a pointer to --help) and exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}; see --help\n")

# The stops raised and not yet ended, with when they came: one that some code swallowed is raised
# again at the next ``raise_pending`` (an epoch's end, a part's start, the command's end).
_pending = []

def _stop(signum, frame):
    if _pending and time.monotonic() - _pending[-1][1] < SAME_STOP:
        return
    _pending.append((signum, time.monotonic()))
    raise Stopped(signum)

def raise_pending():
    if _pending:
        raise Stopped(_pending[-1][0])

def _raise_again_later(signum):
    _pending[:] = [(signum, -SAME_STOP)]  # the stop that was dropped, not a second one
    import threading  # here: loading it at the first line would widen the moment before stops are caught

    again = threading.Timer(AGAIN_AFTER, _thread.interrupt_main, (signum,))
    again.daemon = True
    again.start()

def _stop_dropped(previous_hook, unraisable):
    """``sys.unraisablehook``: a stop Python drops (in JAX's garbage-collector callback) raised again."""
    try:
        signum = stop_signal(unraisable.exc_value)
        if signum is None:
            return previous_hook(unraisable)
        _raise_again_later(signum)
    except KeyboardInterrupt as exc:  # the stop raised again while this ran
        _raise_again_later(stop_signal(exc))

def _handle(handler):
    """``handler`` for each stop signal not already ignored (`nohup`); returns the handlers it replaced."""
    return {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS
            if signal.getsignal(signum) not in (signal.SIG_IGN, None)}

@contextlib.contextmanager
def deferred():
    """Stops noted inside, the first raised at its end: for what a stop must not cut short (a C++
    library's import, which an exception can abort; a pool while its workers start)."""
    threading = sys.modules.get("threading")
    if threading and threading.current_thread() is not threading.main_thread():
        yield
        return
    noted = []
    previous = _handle(lambda signum, frame: noted.append(signum))
    try:
        yield
    finally:
        release((sys.unraisablehook, previous))  # the handlers as they were
        if noted:
            signal.raise_signal(noted[0])

def catch_stops():
    """From now on a stop raises Stopped (one ignored, under `nohup`, stays so); returns what ``release`` restores."""
    hook = sys.unraisablehook
    if getattr(hook, "func", None) is not _stop_dropped:
        sys.unraisablehook = functools.partial(_stop_dropped, hook)
    return hook, _handle(_stop)

def release(caught):
    hook, previous = caught
    sys.unraisablehook = hook
    for signum, handler in previous.items():
        signal.signal(signum, handler)

def stop_signal(exc):
    """The signal of a KeyboardInterrupt among ``exc``'s causes (a C call's surfaces as another error), or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return getattr(exc, "signum", signal.SIGINT)
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None

def say(prog, text):
    """``prog: text`` as one line on stderr, whatever a path in it holds."""
    print(f"{prog}: {text}".replace("\r", "\\r").replace("\n", "\\n"), file=sys.stderr, flush=True)

def stopped(prog, signum):
    ended(signum)
    say(prog, f"stopped ({signal.Signals(signum).name}); what had finished is saved, rerun the same command to go on")
    return 128 + signum

def cannot_write(where, exc):
    """The LabError for an OS error while writing ``where``, with the fix for its cause."""
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG):
        fix = "free some space or pass --out to another folder"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "make it writable or pass --out to a folder you can write to"
    elif exc.errno in (errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.ENOTEMPTY):
        fix = ("move aside what stands in the way (a folder where a file goes, or a file where a folder goes) "
               "or pass --out to another folder")
    else:
        fix = "check that folder or pass --out to another one"
    reason = " ".join(str(exc.strerror or exc).split())
    return LabError(f"cannot write {where} ({reason}); {fix}, then rerun the same command")

def ended(signum):  # the stop has reached the top
    _pending.clear()
    return signum

def _stop_behind(exc):
    """The stop behind ``exc``, or one swallowed before it (a half-made module fails later)."""
    signum = stop_signal(exc)
    if signum is None and _pending and not isinstance(exc, SystemExit):
        signum = _pending[-1][0]
    return signum

def ending(prog, exc):
    """The exit code of ``prog`` ended by ``exc``, its line said; a bug is re-raised (its traceback)."""
    signum = _stop_behind(exc)
    if signum is not None:
        return stopped(prog, signum)
    if isinstance(exc, LabError):
        say(prog, f"error: {exc}")
        return 2
    # A reader of stdout gone away (`| head`; rich, Keras's layer table, ends so with SystemExit):
    # nothing more is said, and later writes go nowhere.
    if isinstance(exc, BrokenPipeError) or isinstance(exc.__context__, BrokenPipeError):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return CLOSED_PIPE
    if isinstance(exc, OSError):  # a full disk or a folder gone read-only under a library's own write
        return ending(prog, cannot_write(exc.filename or "a file", exc))
    text = str(exc)
    if isinstance(exc, MemoryError) or (isinstance(exc, Exception) and (
            "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower())):  # the backend's own error
        return ending(prog, LabError(f"out of memory ({type(exc).__name__}); pass a smaller --batch-size or smaller "
                                     "layers, or close other programs, then rerun the same command"))
    raise exc

def run(main, *args, prog=None):
    """``main(*args)`` under the error contract; returns the exit code."""
    prog = prog or os.path.basename(sys.argv[0])
    if sys.stdout is None:  # closed (`>&-`): what is printed goes nowhere
        sys.stdout = open(os.devnull, "w")
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):  # a path the terminal cannot encode is escaped
            stream.reconfigure(errors="backslashreplace")
    caught = catch_stops()
    try:
        try:
            code = main(*args)
            raise_pending()
            return code
        finally:  # what is still buffered goes now, so that a reader gone away is noticed here
            sys.stdout.flush()
    except BaseException as exc:
        return ending(prog, exc)
    finally:
        release(caught)

def exit_now(code):
    """End at once, output flushed and a stopped pool's semaphores released (lest the tracker warn)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    if "multiprocessing.util" in sys.modules:
        sys.modules["multiprocessing.util"]._run_finalizers()
    os._exit(code)

def from_now(prog):
    """A command's first line: from here on a stop is its one line, even while the libraries load."""
    catch_stops()
    default_hook = sys.excepthook

    def hook(kind, exc, traceback):
        signum = _stop_behind(exc)
        if signum is None:
            return default_hook(kind, exc, traceback)
        exit_now(stopped(prog, signum))
    sys.excepthook = hook

def exit_command(main, *args, prog=None):
    """``sys.exit(run(main, *args))``, but at once: tearing the interpreter down while the backend's
    threads compute can crash it; the exit functions run here, where a stop still says its line."""
    prog = prog or os.path.basename(sys.argv[0])
    code = run(main, *args, prog=prog)
    if code <= 128:
        _handle(lambda signum, frame: exit_now(stopped(prog, signum)))
        atexit._run_exitfuncs()
    exit_now(code)
