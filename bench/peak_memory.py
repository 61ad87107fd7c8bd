"""Peak memory, wall time and the cores' use of a command and every process it starts (Linux).

Every 0.2 s it adds up the proportional set size (PSS: shared pages split between the
processes that share them) of the command's whole process tree, so side-by-side workers are
counted once each and the libraries they share are not counted twice. The cores' use is the
whole machine's (``/proc/stat``), so run it with nothing else running.

    python bench/peak_memory.py make lab
    python bench/peak_memory.py python mlp_mnist.py --study
"""

import os
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


def cpu_seconds():
    """(busy, all) seconds of every core since boot: busy is all but idle and waiting for disk."""
    with open("/proc/stat") as f:
        ticks = [int(field) for field in f.readline().split()[1:]]
    every = sum(ticks)
    return (every - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK"), every / os.sysconf("SC_CLK_TCK")


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    start, cpu_start = time.perf_counter(), cpu_seconds()
    process = subprocess.Popen(argv)
    peak, peak_processes = 0, 0
    while process.poll() is None:
        pids = tree(process.pid)
        total = sum(pss_kib(pid) for pid in pids)
        if total > peak:
            peak, peak_processes = total, len(pids)
        time.sleep(INTERVAL)
    seconds = time.perf_counter() - start
    busy, every = (end - begin for end, begin in zip(cpu_seconds(), cpu_start))
    print(f"\npeak memory {peak / 2**20:.2f} GiB (PSS of {peak_processes} processes together), "
          f"wall time {seconds / 60:.1f} min ({seconds:.0f} s), cores busy {busy / every:.0%} "
          f"({busy:,.0f} of {every:,.0f} core-seconds), exit code {process.returncode}", file=sys.stderr)
    return process.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
