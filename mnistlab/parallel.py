"""Independent trainings side by side (the study's trials, the per-level autoencoders): here, one
single-threaded worker pinned to each core (bench/README.md), or with ``--cluster`` as tasks of a
Dask cluster (docs/cluster.md), sent the lab's code, the data file once and each task. A worker
loads its data once, then trains job after job; the script the user runs keeps the run's folder.
"""

import contextlib
import functools
import hashlib
import importlib
import importlib.util
import io
import json
import logging
import multiprocessing
import os
import pickle
import random
import shutil
import signal
import socket
import sys
import tempfile
import threading
import unittest.mock
import urllib.parse
from concurrent.futures import CancelledError, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from mnistlab import backend, cli, data, lab

MAX_DEFAULT_WORKERS = 4  # each worker holds its own MNIST and backend
# Ctrl-C and a closed terminal reach the whole process group: they are the parent's to handle
# (it saves what has finished, then terminates the workers).
TERMINAL_STOPS = tuple(signum for signum in cli.STOP_SIGNALS if signum != signal.SIGTERM)
CONNECT_SECONDS = 30  # to reach the scheduler, and to get it back after a lost connection
STARTUP_CHECK_SECONDS = 3  # the pre-Keras check that something listens at the address
CODE_FOLDER = "mnistlab-code"  # the lab's code as the workers receive it
VERSIONED = ("keras", "jax", "jaxlib", "tensorflow", "tensorflow-cpu")  # what makes a trial's numbers
SINGLE_THREADED_XLA = "--xla_cpu_multi_thread_eigen=false"  # JAX's XLA on one thread
START_HINT = "check that `dask scheduler` runs there and that this machine can reach its port"

_worker = {"lock": threading.Lock(), "data": None}  # in a worker process: one training at a time, its data

def usable_cores():
    """The cores this process may run on: its affinity (Linux), else those Python sees."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return getattr(os, "process_cpu_count", os.cpu_count)() or 1  # Python 3.13 honours Windows' affinity

def core_ids(count):
    """``count`` distinct cores to pin workers to, or Nones where the OS cannot pin."""
    if hasattr(os, "sched_getaffinity") and hasattr(os, "sched_setaffinity"):
        return sorted(os.sched_getaffinity(0))[:count]
    return [None] * count

def default_workers():
    """One per usable core, at most MAX_DEFAULT_WORKERS; one on a GPU, which adds no cores."""
    return 1 if backend.gpu_reported() else min(usable_cores(), MAX_DEFAULT_WORKERS)

def worker_count(requested, jobs):
    return max(1, min(requested, jobs, usable_cores()))

def trainings(script, args):
    """``Cluster`` or ``Local``: ``describe(jobs)``, ``slots(jobs)`` at once, and ``run(task, jobs, load)``
    yielding ``(job, task(load(data file), job))`` as each is done."""
    return Cluster(args.cluster, script, args.data) if args.cluster else Local(args.workers, args.data)

def _loaded(key, load):
    """``load()`` in a worker, kept for its next job of the same ``key`` (the earlier data freed first)."""
    if _worker["data"] is None or _worker["data"][0] != key:
        _worker["data"] = None
        _worker["data"] = key, load()
    return _worker["data"][1]

def with_work_beside(results, jobs, slots, work):
    """``results`` of ``jobs`` trainings, ``slots`` at a time; ``work()`` runs here on the core the last
    ones leave idle, if they do. A stop in ``work`` ends the trainings too."""
    free_after = max(0, jobs - slots + 1)  # results in by then
    with contextlib.closing(results):
        for done in range(jobs):
            if done == free_after:
                work()
            yield next(results)

# On this machine

class Local:
    def __init__(self, workers, data_path):
        self.workers, self.data_path = workers, data_path

    def describe(self, jobs):
        return f"{worker_count(self.workers, jobs)} at a time"

    def slots(self, jobs):
        return worker_count(self.workers, jobs)

    def run(self, task, jobs, load):
        return run(task, jobs, functools.partial(load, self.data_path), self.workers)

def _start(cores):
    core = cores.get()
    if core is not None:
        os.sched_setaffinity(0, {core})
    for signum in TERMINAL_STOPS:
        signal.signal(signum, signal.SIG_IGN)

@contextlib.contextmanager
def started_deaf():
    """Processes started inside start with TERMINAL_STOPS blocked (a worker importing Keras would print a
    traceback; the resource tracker would die); not on Windows, which has no masks (docs/platforms.md)."""
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
    return job, task(_loaded(repr(setup), setup), job)  # loaded here: a failure reaches the parent as this job's

def run(task, jobs, setup, workers):
    """``(job, task(setup(), job))`` for every job as each is done; one worker runs here."""
    jobs = list(jobs)
    workers = worker_count(workers, len(jobs))
    if workers == 1:
        data = setup() if jobs else None
        yield from ((job, task(data, job)) for job in jobs)
        return
    context = multiprocessing.get_context("spawn")  # on every OS (Windows' only one): a fork would copy threads
    with contextlib.ExitStack() as leaving:  # normally or on a stop, it terminates the workers
        with cli.deferred(), started_deaf():  # a stop waits until the pool is whole: none left orphaned
            others = set(multiprocessing.active_children())  # the caller's own (a notebook's Dask workers): left alone
            cores = context.Queue()
            for core in core_ids(workers):
                cores.put(core)
            pool = ProcessPoolExecutor(workers, context, initializer=_start, initargs=(cores,))
            leaving.callback(pool.shutdown, cancel_futures=True)  # its workers ended first, not once they finish
            leaving.callback(lambda: [child.terminate() for child in multiprocessing.active_children() if child not in others])
            futures = [pool.submit(_call, task, setup, job) for job in jobs]
        try:
            yield from (future.result() for future in as_completed(futures))
        except BrokenProcessPool:  # a worker killed (the OOM killer's SIGKILL): its training is lost, not awaited
            raise cli.LabError("a worker process was killed (it may have run out of memory: --workers 1 holds less); "
                               "what had finished is saved, rerun the same command to go on") from None

# On a Dask cluster

def scheduler_address(address):
    """The scheduler's address: ``address`` itself, or the one in a scheduler file."""
    if "://" in address:
        return address
    if not os.path.isfile(address):
        if address.endswith(".json"):
            raise cli.LabError(f"scheduler file {address} not found; start the scheduler with "
                               f"`dask scheduler --scheduler-file {address}` or pass its address tcp://HOST:PORT")
        return address  # HOST:PORT, Dask's default transport
    try:
        with open(address, encoding="utf-8") as f:
            return json.load(f)["address"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise cli.LabError(f"scheduler file {address} holds no scheduler address ({type(exc).__name__}); "
                           "pass the one `dask scheduler --scheduler-file` wrote, or tcp://HOST:PORT")

def check_cluster(address):
    """Refuse a cluster that cannot be used: Dask not installed, no address, nothing listening."""
    if importlib.util.find_spec("distributed") is None:
        raise cli.LabError("--cluster needs Dask: pip install -r requirements.txt (dask and distributed), "
                           "or drop --cluster to train on this machine")
    target = scheduler_address(address)
    parsed = urllib.parse.urlsplit(target if "://" in target else f"tcp://{target}")
    try:
        host, port = parsed.hostname, parsed.port
    except ValueError:
        host = port = None
    if parsed.scheme not in ("tcp", "tls") or not host or not port:
        if parsed.scheme in ("tcp", "tls"):
            raise cli.LabError(f"--cluster {address} is not a scheduler address; pass tcp://HOST:PORT "
                               "(dask scheduler prints it) or a scheduler file")
        return  # another of Dask's transports: Dask itself checks it when the study connects
    try:
        socket.create_connection((host, port), timeout=STARTUP_CHECK_SECONDS).close()
    except OSError as exc:
        raise cli.LabError(f"cannot reach the Dask scheduler at {target} ({exc.strerror or exc}); {START_HINT}, "
                           "or drop --cluster to train on this machine")

def package_versions():
    return {name: backend.version(name) for name in VERSIONED}

class Cluster:
    """Trainings as tasks of the Dask cluster at ``address``; a stop, or leaving the loop, cancels them."""

    def __init__(self, address, script, data_path):
        self.address, self.script, self.data_path = address, script, data_path
        self.workers = None  # known once connected

    def describe(self, jobs):
        return f"as tasks of the Dask cluster at {self.address}"

    def slots(self, jobs):
        return max(1, min(self.workers or 1, jobs))

    def run(self, task, jobs, load):
        from distributed import as_completed

        jobs = list(jobs)
        if not jobs:
            return
        client = self._connect()
        futures = []
        try:
            present = len(client.scheduler_info()["workers"])
            with tempfile.TemporaryDirectory() as folder:
                client.register_plugin(_upload_code(folder), name=CODE_FOLDER)  # restarts the workers
            with contextlib.suppress(TimeoutError):  # back, before the data is sent to each of them
                client.wait_for_workers(present, timeout=CONNECT_SECONDS)
            self._note_versions(client)
            source = data.resolve_source(self.data_path) or data.downloaded_file()
            if source is None:
                raise cli.LabError(f"no local MNIST file to send to the Dask workers; {data.OFFLINE_HINT}")
            with open(source, "rb") as f:
                shipped = client.scatter(f.read(), broadcast=True, hash=True)
            payload = pickle.dumps((task, load))  # by reference: the worker imports the script first
            backend_name = os.environ.get("KERAS_BACKEND", lab.SCRIPTS[self.script]["backend"])
            futures = [client.submit(work, self.script, backend_name, payload, shipped, job, pure=False,
                                     key=f"mnistlab-{self.script}-{job}-{os.getpid()}") for job in jobs]
            by_future = dict(zip(futures, jobs))
            for future in as_completed(futures, loop=client.loop):
                yield by_future[future], self._result(future)
        except (OSError, CancelledError) as exc:  # the scheduler gone: its connection closed, timed out
            if client.status == "running":  # connected still: every worker that held the data died
                raise cli.LabError("the Dask cluster lost the data sent to it (every worker that held it "
                                   "stopped); what had finished is saved: rerun the same command") from exc
            raise cli.LabError(f"lost the Dask scheduler at {self.address} ({type(exc).__name__}); what had "
                               f"finished is saved: {START_HINT}, then rerun the same command") from exc
        finally:
            with contextlib.suppress(Exception):
                client.cancel(futures)
            with contextlib.suppress(Exception):
                client.close(timeout=CONNECT_SECONDS)

    def _connect(self):
        from distributed import Client

        for name in list(logging.root.manager.loggerDict):
            if name.split(".")[0] == "distributed":
                logging.getLogger(name).setLevel(logging.CRITICAL)
        target = scheduler_address(self.address)
        try:
            client = Client(target, timeout=CONNECT_SECONDS, set_as_default=False)
        except (OSError, ValueError) as exc:
            raise cli.LabError(f"cannot reach the Dask scheduler at {target} ({type(exc).__name__}); {START_HINT}, "
                               "or drop --cluster to train on this machine") from exc
        info = client.scheduler_info()
        self.workers = sum(w.get("nthreads", 1) for w in info.get("workers", {}).values())
        dashboard = info.get("services", {}).get("dashboard")
        print(f"Dask cluster at {target}: {len(info.get('workers', {}))} workers"
              + (f", dashboard {client.dashboard_link}" if dashboard else
                 " (no dashboard: pip install bokeh where the scheduler runs to have one)"), flush=True)
        if not info.get("workers"):
            print("  no worker has joined yet: the trials start as workers join "
                  f"(dask worker {target} --nthreads 1)", flush=True)
        return client

    @staticmethod
    def _note_versions(client):
        ours = package_versions()
        differing = [f"{worker} (" + ", ".join(f"{name} {theirs.get(name) or 'missing'}" for name in VERSIONED
                                               if theirs.get(name) != ours.get(name)) + ")"
                     for worker, theirs in sorted(client.run(package_versions).items()) if theirs != ours]
        if differing:
            here = ", ".join(f"{name} {version}" for name, version in ours.items() if version)
            print(f"warning: workers with other versions than this machine's ({here}), whose numbers may "
                  f"differ from a run here: {'; '.join(differing)}", file=sys.stderr, flush=True)

    @staticmethod
    def _result(future):
        from distributed import KilledWorker

        try:
            return future.result()
        except ModuleNotFoundError as exc:
            raise cli.LabError(f"a Dask worker cannot import the lab's code ({exc}); start workers with "
                               "`dask worker ADDRESS` (with its nanny, which receives the code), not --no-nanny") from exc
        except KilledWorker as exc:
            raise cli.LabError(f"Dask workers kept dying on one task ({exc}); check the workers' memory and "
                               "logs, then rerun the same command") from exc

def _upload_code(folder):
    from distributed.diagnostics.plugin import UploadDirectory

    code = os.path.join(folder, CODE_FOLDER)
    shutil.copytree(os.path.join(lab.ROOT, "mnistlab"), os.path.join(code, "mnistlab"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    for script in lab.SCRIPTS:
        shutil.copy(os.path.join(lab.ROOT, f"{script}.py"), code)
    return UploadDirectory(code, restart_workers=True, update_path=True, mode="all")  # the scheduler reads tasks too

class _Unpickler(pickle.Unpickler):
    """Finds a script's functions (``__main__`` on the driver) in its module."""

    def __init__(self, file, script):
        super().__init__(file)
        self.script = script

    def find_class(self, module, name):
        return super().find_class(self.script if module in ("__main__", "__mp_main__") else module, name)

def _from_bytes(shipped, load):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "mnist.npz")
        with open(path, "wb") as f:
            f.write(shipped)
        return load(path)

def work(script, backend_name, payload, shipped, job):
    """One job on a Dask worker, one at a time, single-threaded as a pool's (the same sums), on ``shipped``."""
    # Keras's seeds for initial weights drawn from this task's own generator: the worker's event
    # loop draws from the shared one meanwhile (its timers' jitter).
    own = random.Random()
    with _worker["lock"], unittest.mock.patch.multiple(random, seed=own.seed, randint=own.randint):
        keras = sys.modules.get("keras")
        if keras and keras.backend.backend() != backend_name:  # another driver's run, since the restart
            raise cli.LabError(f"Dask worker runs Keras on {keras.backend.backend()}, this run on {backend_name}: "
                               "run one study at a time on the cluster, or restart its workers")
        os.environ["KERAS_BACKEND"] = backend_name  # before the script's import loads Keras
        if SINGLE_THREADED_XLA not in os.environ.get("XLA_FLAGS", ""):
            os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {SINGLE_THREADED_XLA}".strip()
        for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
            os.environ.setdefault(name, "1")
        importlib.import_module(script)
        task, load = _Unpickler(io.BytesIO(payload), script).load()
        key = hashlib.sha256(shipped).hexdigest() + repr(load)
        return task(_loaded(key, functools.partial(_from_bytes, shipped, load)), job)
