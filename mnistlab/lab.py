"""The lab's fixed facts, read by the scripts, the report, the bench and the Makefile alike, and
the whole lab as one command, each part in its own process. Light: it loads at a first line.

    python -m mnistlab.lab             # the whole lab; stopped, the same command goes on
    python -m mnistlab.lab --quick     # the same on a small subset, under quick/
    python -m mnistlab.lab SCRIPT      # prints the flags the whole lab gives SCRIPT
"""

import os
import signal
import subprocess
import sys

from mnistlab import cli, records

HINTON = 0.9847  # Hinton's regularised MLP: the handout's reference for question 2D
LAB_REPORT_MLP = 0.9830  # the lab report's best regularised MLP (2D)
LAB_REPORT_CNN = 0.9915  # the lab report's CNN (3)
TARGET_CNN = 0.99  # the handout's bar for question 3

MLP_HIDDEN = (64, 64)
MLP_LR, MLP_BATCH_SIZE = 0.1, 128
MLP_EPOCHS = 20
# Why the MLP trains MLP_EPOCHS by default, where the handout's question 2C says 10 (docs/scripts.md).
MLP_EPOCHS_WHY = ("at 10 epochs whether the MLP reaches 97% depends on the seed; "
                  f"at {MLP_EPOCHS} every seed tried does")
STUDY_HIDDEN = (500, 300)
NOISE_FIGURE_LEVELS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # question 4B

# Each script: the Keras backend it trains on by default (the dense models train several times
# faster on JAX on a CPU, the CNN on TensorFlow's oneDNN: bench/README.md), and its records (the
# main one first).
SCRIPTS = {
    "mlp_mnist": {"backend": "jax", "records": ("mlp_mnist", "mlp_l2_study")},
    "cnn_mnist": {"backend": "tensorflow", "records": ("cnn_mnist", "cnn_improved")},
    "denoise_autoencoder": {"backend": "jax", "records": ("denoise_autoencoder",)}}

# The flags the whole lab runs each script with: every part at the lab's settings, the models kept
# for question 4C, and the autoencoder retrained at each of 4B's levels as the lab report did.
LAB_FLAGS = {
    "mlp_mnist": ("--study", "--save-model"), "cnn_mnist": ("--save-model",),
    "denoise_autoencoder": ("--per-level", "--fixed-noise", "--levels", *(f"{level:g}" for level in NOISE_FIGURE_LEVELS))}
# The flags by kind: where a run reads and writes and on how many cores (not what it computes,
# so a stopped run goes on whatever they say), and what runs and is kept rather than how it
# trains (the report does not call a run made with them one of other settings).
NOT_SETTINGS = ("data", "out", "workers", "cluster", "changed")
CHOICE_FLAGS = ("model", *(flag[2:] for flags in LAB_FLAGS.values() for flag in flags if flag.startswith("--")))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where the scripts are

def default_out(quick):  # where a run writes unless --out says
    return "quick" if quick else "."

def flag_label(dest, value):
    """A flag as runs are labelled by it: ``lr 0.05``, ``study``, ``l2 1e-06 0.001``."""
    if value is True:
        return dest.replace("_", "-")
    values = value if isinstance(value, list) else [value]
    return " ".join([dest.replace("_", "-"), *(f"{v:g}" if isinstance(v, float) else str(v) for v in values)])

# The whole lab

def commands(lab_flags, quick, out):
    """Each part and its command: the scripts of ``lab_flags`` in order, then the report."""
    common = [*(["--quick"] if quick else []), "--out", out]
    return [*((script, [sys.executable, os.path.join(ROOT, f"{script}.py"), *common, *flags])
              for script, flags in lab_flags.items()),
            ("report", [sys.executable, "-m", "mnistlab.report", "--out", out])]

def run_part(command):
    """``command``'s exit code, and the signal of a stop meanwhile (passed on to the part) or None."""
    part = subprocess.Popen(command)
    try:
        return part.wait(), None
    except cli.Stopped as stop:
        if os.name != "nt" or stop.signum != signal.SIGINT:  # Windows' Ctrl-C reaches the part by itself
            part.send_signal(stop.signum)
        return part.wait(), cli.ended(stop.signum)

def main(prog, lab_flags, quick, out):
    """Every part not done yet, in order; a done part whose code has changed runs again, and those after it."""
    path = os.path.join(out, "runs", "lab.json")
    progress = records.read(path, {"done": records.ListOf(str), "code": records.MapOf((dict, type(None)))})
    done, ran = progress.get("done", []), progress.get("code", {})
    for name, command in commands(lab_flags, quick, out):
        now = records.of_file(os.path.join(ROOT, f"{name}.py")) if name in lab_flags else None
        if name in done:
            why = records.changed_since(ran.get(name), now, f"{name}.py") if name in lab_flags else None
            if not why:
                print(f"{name}: finished in the lab stopped earlier; not run again", flush=True)
                continue
            print(f"{name}: finished in the lab stopped earlier, but {why}: it runs again, and the parts after it",
                  flush=True)
            done = done[:done.index(name)]
        print(f"== {name}", flush=True)
        exit_code, stop = run_part(command)
        if exit_code == 0:
            done.append(name)
            ran[name] = now
            os.makedirs(os.path.dirname(path), exist_ok=True)
            records.write_json(path, {"done": done, "code": ran})
        if stop and exit_code <= 0:  # the part finished, or died, as the stop came: the stop's line is this command's
            return cli.stopped(prog, stop)
        if exit_code < 0:  # killed by a signal (POSIX)
            signame = signal.Signals(-exit_code).name
            cli.say(prog, f"{name} was killed ({signame}{'; it may have run out of memory' * (signame == 'SIGKILL')}); "
                          "what had finished is saved, rerun the same command to go on")
            return 128 - exit_code
        if exit_code:
            return exit_code
    os.remove(path)
    return 0

if __name__ == "__main__":
    PROG = f"python -m {__spec__.name}"
    cli.from_now(PROG)
    parser = cli.LabParser(prog=PROG, description="The whole lab: the three scripts at the lab's settings, one "
                           "after the other, then REPORT.md. Stopped, the same command goes on.")
    parser.add_argument("script", nargs="?", choices=list(LAB_FLAGS),
                        help="print only the flags the whole lab gives SCRIPT (the Makefile reads them)")
    parser.add_argument("--quick", action="store_true",
                        help="every part on a small subset with 1-2 epochs, in a minute (written under quick/)")
    parser.add_argument("--out", metavar="DIR", help="where the runs, figures, numbers and REPORT.md go "
                        "(default: this folder; quick/ with --quick)")
    args = parser.parse_args()
    if args.script:
        print(" ".join(LAB_FLAGS[args.script]))
    else:
        cli.exit_command(main, PROG, LAB_FLAGS, args.quick, args.out or default_out(args.quick), prog=PROG)
