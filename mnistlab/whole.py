"""The whole lab as one command, ``python -m mnistlab.lab``: the three scripts with the flags
the lab gives them (``lab.LAB_FLAGS``, handed in by ``lab``, which imports this module), each in
its own process, then the report. A failing part ends the lab with its line and exit code; a
stop is passed on to the part running, which says its line. Rerun, the lab skips the parts its
progress file (``OUT/runs/lab.json``) names, but one whose code has changed since (and those
after it).
"""

import os
import signal
import subprocess
import sys

from mnistlab import code, exits, files, stops
from mnistlab.schema import ListOf, MapOf, read_checked

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where the scripts are


def commands(lab_flags, quick, out):
    """Each part of the lab, by name, and the command that runs it: each script of
    ``lab_flags`` with its flags, in order, then the report of ``out`` (the run's folder)."""
    common = [*(["--quick"] if quick else []), "--out", out]
    parts = [(script, [sys.executable, script_path(script), *common, *flags])
             for script, flags in lab_flags.items()]
    return parts + [("report", [sys.executable, "-m", "mnistlab.report", "--out", out])]


def run_part(command):
    """Run ``command`` to its end; returns its exit code and the signal of a stop that reached
    this process meanwhile (None without one). The stop is passed on to the part, which saves
    what it has done and says its line."""
    part = subprocess.Popen(command)
    try:
        return part.wait(), None
    except stops.Stopped as stop:
        if os.name != "nt" or stop.signum != signal.SIGINT:  # Windows' Ctrl-C reaches the part by itself
            part.send_signal(stop.signum)
        return part.wait(), stops.ended(stop.signum)  # the part says its line


def main(prog, lab_flags, quick, out):
    path = os.path.join(out, "runs", "lab.json")
    progress = read_checked(path, {"done": ListOf(str), "code": MapOf((dict, type(None)))})
    done, ran = progress.get("done", []), progress.get("code", {})
    for name, command in commands(lab_flags, quick, out):
        now = code.of_file(script_path(name)) if name in lab_flags else None
        if name in done:
            why = code.changed_since(ran.get(name), now, f"{name}.py") if name in lab_flags else None
            if not why:
                print(f"{name}: finished in the lab stopped earlier; not run again", flush=True)
                continue
            # The parts after it may read what it makes (question 4C, the saved MLP): they run again too.
            print(f"{name}: finished in the lab stopped earlier, but {why}: it runs again, and the parts after it",
                  flush=True)
            done = done[:done.index(name)]
        print(f"== {name}", flush=True)
        exit_code, stop = run_part(command)
        if exit_code == 0:
            done.append(name)
            ran[name] = now
            os.makedirs(os.path.dirname(path), exist_ok=True)
            files.write_json(path, {"done": done, "code": ran})
        if stop and not exit_code:  # the part finished as the stop came: the stop's line is this command's
            return stops.stopped(prog, stop)
        if exit_code:
            return exit_code
    os.remove(path)
    return 0


def script_path(script):
    return os.path.join(ROOT, f"{script}.py")


def command(prog, argv, lab_flags, default_out):
    """``python -m mnistlab.lab`` (``prog``), its stops caught: print one script's flags, or run
    the whole lab; ``lab_flags`` and ``default_out`` are the lab's (``mnistlab.lab``)."""
    parser = exits.LabParser(prog=prog, description="The whole lab: the three scripts at the lab's settings, one "
                             "after the other, then REPORT.md. Stopped, the same command goes on.")
    parser.add_argument("script", nargs="?", choices=list(lab_flags),
                        help="print only the flags the whole lab gives SCRIPT (the Makefile reads them)")
    parser.add_argument("--quick", action="store_true",
                        help="every part on a small subset with 1-2 epochs, in a minute (written under quick/)")
    parser.add_argument("--out", metavar="DIR", help="where the runs, figures, numbers and REPORT.md go "
                        "(default: this folder; quick/ with --quick)")
    args = parser.parse_args(argv)
    if args.script:
        print(" ".join(lab_flags[args.script]))
        return
    out = args.out or default_out(args.quick)
    exits.exit_script(lambda argv: main(prog, lab_flags, args.quick, out), prog)
