"""Independent trainings side by side, one single-threaded worker process per CPU core: the
lab's models are small, and two threads splitting each product wait on each other
(bench/README.md). Each worker is pinned to its core where the OS can (Linux), loads its own
copy of the data once, then trains job after job.
"""

import contextlib
import functools
import multiprocessing
import os
import signal
import typing

from mnistlab import backend, stops

MAX_DEFAULT_WORKERS = 4  # each worker holds its own MNIST and backend

_worker = {}  # in a worker process: its data, once loaded


def usable_cores():
    """The cores this process may run on: its affinity (Linux), else those Python sees."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    count = getattr(os, "process_cpu_count", os.cpu_count)()  # Python 3.13 honours Windows' affinity
    return count or 1


def core_ids(count):
    """``count`` distinct cores to pin workers to, or Nones where the OS cannot pin."""
    if hasattr(os, "sched_getaffinity") and hasattr(os, "sched_setaffinity"):
        return sorted(os.sched_getaffinity(0))[:count]
    return [None] * count


def default_workers():
    """One per usable core, at most MAX_DEFAULT_WORKERS; one on a GPU, which adds no cores."""
    return 1 if backend.gpu_reported() else min(usable_cores(), MAX_DEFAULT_WORKERS)


def worker_count(requested, jobs):
    """How many workers ``run`` starts: one per job at most, one per usable core at most."""
    return max(1, min(requested, jobs, usable_cores()))


# Ctrl-C and a closed terminal reach the whole process group: they are the parent's to handle
# (it saves what has finished, then terminates the workers).
TERMINAL_STOPS = tuple(signum for signum in stops.STOP_SIGNALS if signum != signal.SIGTERM)


def _start(cores):
    core = cores.get()
    if core is not None:
        os.sched_setaffinity(0, {core})
    for signum in TERMINAL_STOPS:
        signal.signal(signum, signal.SIG_IGN)


@contextlib.contextmanager
def started_deaf():
    """Processes started inside start with TERMINAL_STOPS blocked, until ``_start`` ignores
    them: a spawned worker first imports the script, and Keras with it, where Ctrl-C would print
    a traceback; multiprocessing's resource tracker, which a closed terminal would kill, keeps
    them blocked. This process gets a stop that came meanwhile as the block ends. Where the OS
    has signal masks: not on Windows (docs/platforms.md)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    from multiprocessing import resource_tracker

    before = signal.pthread_sigmask(signal.SIG_BLOCK, TERMINAL_STOPS)
    try:
        resource_tracker.ensure_running()  # started here, it unblocks Ctrl-C in this thread: again
        signal.pthread_sigmask(signal.SIG_BLOCK, TERMINAL_STOPS)
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _call(task, setup, job):
    # Loading here rather than in _start: a failure then reaches the parent as this job's error.
    if "data" not in _worker:
        _worker["data"] = setup()
    return job, task(_worker["data"], job)


class Trainings(typing.Protocol):
    """Where a script's independent trainings run: ``Local`` (this machine's pool) or
    ``cluster.Cluster`` (a Dask cluster); ``trainings`` chooses."""

    def describe(self, jobs: int) -> str:
        """How ``jobs`` trainings run, as the progress line says it."""

    def slots(self, jobs: int) -> int:
        """How many of ``jobs`` train at once."""

    def run(self, task, jobs, load):
        """Yield ``(job, task(load(data file), job))`` for every job, each as soon as it is done."""


class Local:
    """Trainings (``Trainings``) in worker processes on this machine, ``workers`` at a time,
    each loading the data file at ``data_path`` (None: Keras's download)."""

    def __init__(self, workers, data_path):
        self.workers, self.data_path = workers, data_path

    def describe(self, jobs):
        return f"{worker_count(self.workers, jobs)} at a time"

    def slots(self, jobs):
        return worker_count(self.workers, jobs)

    def run(self, task, jobs, load):
        """The module's ``run``, its workers loading ``load(data_path)``."""
        return run(task, jobs, functools.partial(load, self.data_path), self.workers)


def trainings(script, args) -> Trainings:
    """``script``'s trainings on the Dask cluster of ``--cluster``, else on ``--workers`` here."""
    if args.cluster:
        from mnistlab import cluster

        return cluster.Cluster(args.cluster, script, args.data)
    return Local(args.workers, args.data)


def with_work_beside(results, jobs, slots, work):
    """Yield ``results`` (of ``jobs`` trainings, ``slots`` at a time); as soon as fewer of them
    train than ``slots`` but some still do, call ``work()`` here: it takes the core the last
    ones leave idle, and the results that come meanwhile wait for it (without such a moment, it
    is not called). A stop in ``work`` ends the trainings too."""
    free_after = max(0, jobs - slots + 1)  # results in by then
    with contextlib.closing(results):
        for done in range(jobs):
            if done == free_after:
                work()
            yield next(results)


def run(task, jobs, setup, workers):
    """Yield ``(job, task(setup(), job))`` for every job as each is done (module-level functions,
    or partials of them, that workers can import); one worker runs here, on every core."""
    jobs = list(jobs)
    workers = worker_count(workers, len(jobs))
    if workers == 1:
        data = setup() if jobs else None
        for job in jobs:
            yield job, task(data, job)
        return
    # "spawn" on every OS (the only one Windows has): a fork would copy this process's threads.
    context = multiprocessing.get_context("spawn")
    with contextlib.ExitStack() as leaving:  # normally or on a stop, it terminates the workers
        # A stop while the workers start waits until the pool is whole (the workers started so
        # far would otherwise be left orphaned), then terminates them.
        with stops.deferred(), started_deaf():
            cores = context.Queue()
            for core in core_ids(workers):
                cores.put(core)
            pool = leaving.enter_context(context.Pool(workers, initializer=_start, initargs=(cores,)))
        yield from pool.imap_unordered(functools.partial(_call, task, setup), jobs)
