"""What each use of Keras's private parts (mnistlab/internals.py) buys a whole command: the
command as the project runs it and with that use switched off (a sitecustomize that replaces
the function by one that does nothing), side by side, alternating, in fresh processes; the
wall time of each, their ratio, and whether the records' numbers are the same.

    python bench/internals.py --data ../shared/data/mnist.npz            # every use, 2 pairs each
    python bench/internals.py --data ../shared/data/mnist.npz --uses feed --pairs 3
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from mnistlab.lab import LAB_FLAGS  # noqa: E402

# Each use: the internals functions switched off together (one gain), and the commands it is measured on.
USES = {
    "feed": (("feed_untuned",), [["cnn_mnist.py"]]),
    "scan": (("scan_steps",), [[f"{script}.py", *LAB_FLAGS[script]] for script in ("denoise_autoencoder", "mlp_mnist")]),
    "tensorflow": (("keep_tensorflow_out",), [["mlp_mnist.py", "--quick"], ["mlp_mnist.py", "--quick", "--save-model"]]),
}


def timed(command, data, out, off=()):
    """Seconds ``command`` takes (its records under ``out``), with the internals ``off`` switched off."""
    env = dict(os.environ)
    if off:
        folder = tempfile.mkdtemp()
        with open(os.path.join(folder, "sitecustomize.py"), "w") as f:
            f.write("import mnistlab.internals as i\n" + "".join(f"i.{name} = lambda *a, **k: None\n" for name in off))
        env["PYTHONPATH"] = os.pathsep.join([folder, ROOT])
    start = time.perf_counter()
    subprocess.run([sys.executable, os.path.join(ROOT, command[0]), *command[1:], "--data", data, "--out", out],
                   check=True, capture_output=True, cwd=ROOT, env=env)
    return time.perf_counter() - start


def numbers(out):
    """Every record's history, study rows and accuracy tables under ``out``/results."""
    found = {}
    for name in sorted(os.listdir(os.path.join(out, "results"))):
        if name.endswith(".json") and not name.endswith("_run.json") and "_runs" not in name:
            with open(os.path.join(out, "results", name)) as f:
                record = json.load(f)
            found[name] = {key: record.get(key) for key in ("history", "rows", "classifiers", "reader", "test_accuracy")}
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.environ.get("MNIST_NPZ"), help="Keras's mnist.npz")
    parser.add_argument("--uses", nargs="+", choices=list(USES), default=list(USES))
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()
    for use in args.uses:
        off, commands = USES[use]
        for command in commands:
            times, found = {"on": [], "off": []}, []
            for pair in range(args.pairs):
                for way in (("on", "off") if pair % 2 == 0 else ("off", "on")):
                    out = tempfile.mkdtemp()
                    times[way].append(timed(command, args.data, out, off if way == "off" else ()))
                    found.append(numbers(out))
            same = all(numbers_of_run == found[0] for numbers_of_run in found)
            ratios = [b / a for a, b in zip(times["on"], times["off"])]
            print(f"{use} ({', '.join(off)}) on `{' '.join(command)}`: with {', '.join(f'{t:.1f}' for t in times['on'])} s, "
                  f"without {', '.join(f'{t:.1f}' for t in times['off'])} s: {min(ratios):.2f}-{max(ratios):.2f}x; "
                  f"numbers {'identical' if same else 'DIFFER'}", flush=True)


if __name__ == "__main__":
    main()
