"""The L2 study through a local Dask cluster against the local pool, side by side on one machine.

Both train the same trials with the same seed, two at a time: the local pool as `mlp_mnist.py
--study` runs by default on a two-core machine, and two one-thread Dask workers on 127.0.0.1
(`--cluster`). The table gives the study's rows of both (they should be equal) and each study's
wall time, as its record states it. The lab MLP before the study trains for one epoch only: it
is not what is measured.

    python bench/cluster.py --data ../shared/data/mnist.npz                 # the lab's study
    python bench/cluster.py --data ../shared/data/mnist.npz --quick         # in a minute
"""

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
WORKERS = 2


def study(out, data, extra):
    command = [sys.executable, os.path.join(ROOT, "mlp_mnist.py"), "--study", "--epochs", "1",
               "--workers", str(WORKERS), "--out", out, *(["--data", data] if data else []), *extra]
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    records = {}
    for name in ("mlp_l2_study", "mlp_mnist"):
        with open(os.path.join(out, "results", f"{name}.json"), encoding="utf-8") as f:
            records[name] = json.load(f)
    return {**records["mlp_l2_study"], "cpu": records["mlp_mnist"]["environment"]["cpu"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="Keras's mnist.npz (default: MNIST_NPZ, else the download)")
    parser.add_argument("--quick", action="store_true", help="the --quick study instead of the lab's")
    args = parser.parse_args()
    from distributed import LocalCluster

    from mnistlab.records import percent

    extra = ["--quick"] if args.quick else []
    with tempfile.TemporaryDirectory() as folder, \
            LocalCluster(n_workers=WORKERS, threads_per_worker=1, host="127.0.0.1",
                         dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR) as cluster:
        pool = study(os.path.join(folder, "pool"), args.data, extra)
        dask = study(os.path.join(folder, "dask"), args.data, [*extra, "--cluster", cluster.scheduler_address])
    same = [a["accuracies"] for a in pool["rows"]] == [b["accuracies"] for b in dask["rows"]]
    print(f"{'Quick study' if args.quick else 'The lab study'} on {pool['cpu']}, "
          f"{os.cpu_count()} cores, {WORKERS} trainings at a time in each\n")
    print("| L2 factor | local pool: mean (std) | Dask cluster: mean (std) |")
    print("|---:|---:|---:|")
    for a, b in zip(pool["rows"], dask["rows"]):
        print(f"| {a['l2']:g} | {percent(a['mean'])} ({percent(a['std'])}) | {percent(b['mean'])} ({percent(b['std'])}) |")
    print(f"| study's wall time | {pool['wall_seconds']:.0f} s | {dask['wall_seconds']:.0f} s |")
    print(f"\nEvery trial's accuracy equal in both: {'yes' if same else 'no'}; "
          f"Dask / pool wall time: {dask['wall_seconds'] / pool['wall_seconds']:.2f}x")


if __name__ == "__main__":
    main()
