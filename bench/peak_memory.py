"""Peak memory and wall time of a command and every process it starts (Linux).

Every 0.2 s it adds up the proportional set size (PSS: shared pages split between the
processes that share them) of the command's whole process tree, so side-by-side workers are
counted once each and the libraries they share are not counted twice.

    python bench/peak_memory.py make lab
    python bench/peak_memory.py python mlp_mnist.py --study
"""

import subprocess
import sys
import time

INTERVAL = 0.2


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(child) for child in f.read().split()]
    except OSError:
        return []


def tree(pid):
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children(current))
    return found


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:  # the process ended between listing and reading
        pass
    return 0


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    start = time.perf_counter()
    process = subprocess.Popen(argv)
    peak, peak_processes = 0, 0
    while process.poll() is None:
        pids = tree(process.pid)
        total = sum(pss_kib(pid) for pid in pids)
        if total > peak:
            peak, peak_processes = total, len(pids)
        time.sleep(INTERVAL)
    seconds = time.perf_counter() - start
    print(f"\npeak memory {peak / 2**20:.2f} GiB (PSS of {peak_processes} processes together), "
          f"wall time {seconds / 60:.1f} min ({seconds:.0f} s), exit code {process.returncode}",
          file=sys.stderr)
    return process.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
