"""How a lab command ends: one line and exit 2 for bad input or a failing environment, a stop's
line and 128 + the signal (``stops``), quietly for a closed pipe; its flags' usage errors in
one line too.
"""

import argparse
import atexit
import errno
import functools
import os
import signal
import sys

from mnistlab import stops
from mnistlab.errors import LabError
from mnistlab.stops import exit_now, one_line, stopped

CLOSED_PIPE = 128 + getattr(signal, "SIGPIPE", 13)  # what a shell reports for `... | head -1`


class LabParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (with a pointer to --help) and exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}; see --help\n")


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


def _pipe_closed():
    """The reader of stdout went away (``| head``): say nothing more, as command-line tools do.
    Later writes, and the interpreter's own flush at exit, go to nowhere instead of failing."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    return CLOSED_PIPE


def _usable_streams():
    """A closed stdout (``>&-``) shows nothing; a path the terminal cannot encode is escaped."""
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
    previous = stops.catch_stops()
    try:
        try:
            code = main(argv)
            stops.raise_pending()
            return code
        finally:  # what is still buffered goes now, so that a reader gone away is noticed here
            sys.stdout.flush()
    except BaseException as exc:
        return _ending(prog, exc)
    finally:
        stops.restore_handlers(previous)


def _ending(prog, exc):
    """The exit code of ``prog`` ended by ``exc``, its one line said; re-raises what the
    contract does not cover (a bug: its traceback is the report)."""
    signum = stops.stop_behind(exc)
    if signum is not None:
        return stopped(prog, stops.ended(signum))
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
    """``sys.exit(run(main))``, but the process ends at once, its records saved: tearing the
    interpreter down while the backend's threads compute can crash it, and a stop then would
    meet the default handlers (no line). The exit functions run here, where a stop says its line."""
    prog = prog or os.path.basename(sys.argv[0])
    code = run(main, prog=prog)
    if code <= 128:
        for signum in stops.acted_on():
            signal.signal(signum, functools.partial(_stop_at_exit, prog))
        atexit._run_exitfuncs()
    exit_now(code)


def _stop_at_exit(prog, signum, frame):
    exit_now(stopped(prog, signum))
