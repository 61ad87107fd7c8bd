"""Independent trainings on a Dask cluster (``--cluster ADDRESS``), for work that outgrows one
machine: each trial or per-level autoencoder is one Dask task. The driver (the script the user
runs) keeps the run's folder and its store of finished work exactly as with the local pool.

What the driver sends, so that a worker needs only the requirements installed: the lab's code
(``mnistlab/`` and the three scripts, through Dask's UploadDirectory plugin, which restarts the
workers so that none runs an older copy or another Keras backend), the data file (scattered to
every worker once), and each task's function and settings. A worker that dies mid-task has its
task run again elsewhere by Dask; what reaches the driver is recorded once.

    dask scheduler                                   # on one machine
    dask worker tcp://SCHEDULER:8786 --nthreads 1    # on each machine, once per core
    python mlp_mnist.py --study --cluster tcp://SCHEDULER:8786
"""

import contextlib
import logging
import hashlib
import importlib
import importlib.util
import io
import json
import os
import pickle
import random
import shutil
import socket
import sys
import tempfile
import threading
import urllib.parse
from concurrent.futures import CancelledError

from mnistlab import backend, data, lab
from mnistlab.errors import LabError

CONNECT_SECONDS = 30  # to reach the scheduler, and to get it back after a lost connection
STARTUP_CHECK_SECONDS = 3  # the pre-Keras check that something listens at the address
CODE_FOLDER = "mnistlab-code"  # the lab's code as the workers receive it
VERSIONED = ("keras", "jax", "jaxlib", "tensorflow", "tensorflow-cpu")  # what makes a trial's numbers
SINGLE_THREADED_XLA = "--xla_cpu_multi_thread_eigen=false"  # JAX's XLA on one thread
START_HINT = "check that `dask scheduler` runs there and that this machine can reach its port"

_worker = {"lock": threading.Lock(), "data": None}  # in a worker process: one training at a time, its data


# Before Keras loads


def scheduler_address(address):
    """The scheduler's address: ``address`` itself, or the one in a scheduler file."""
    if "://" in address:
        return address
    if not os.path.isfile(address):
        if address.endswith(".json"):
            raise LabError(f"scheduler file {address} not found; start the scheduler with "
                           f"`dask scheduler --scheduler-file {address}` or pass its address tcp://HOST:PORT")
        return address  # HOST:PORT, Dask's default transport
    try:
        with open(address, encoding="utf-8") as f:
            return json.load(f)["address"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LabError(f"scheduler file {address} holds no scheduler address ({type(exc).__name__}); "
                       "pass the one `dask scheduler --scheduler-file` wrote, or tcp://HOST:PORT")


def check(address):
    """Refuse at once, before Keras loads, a cluster that cannot be used: Dask not installed, an
    address that is not one, nothing listening there."""
    if importlib.util.find_spec("distributed") is None:
        raise LabError("--cluster needs Dask: pip install -r requirements.txt (dask and distributed), "
                       "or drop --cluster to train on this machine")
    target = scheduler_address(address)
    parsed = urllib.parse.urlsplit(target if "://" in target else f"tcp://{target}")
    try:
        host, port = parsed.hostname, parsed.port
    except ValueError:
        host = port = None
    if parsed.scheme not in ("tcp", "tls") or not host or not port:
        if parsed.scheme in ("tcp", "tls"):
            raise LabError(f"--cluster {address} is not a scheduler address; pass tcp://HOST:PORT "
                           "(dask scheduler prints it) or a scheduler file")
        return  # another of Dask's transports: Dask itself checks it when the study connects
    try:
        socket.create_connection((host, port), timeout=STARTUP_CHECK_SECONDS).close()
    except OSError as exc:
        raise LabError(f"cannot reach the Dask scheduler at {target} ({exc.strerror or exc}); {START_HINT}, "
                       "or drop --cluster to train on this machine")


# The driver


class Cluster:
    """Trainings (``parallel.Trainings``) as tasks of the Dask cluster at ``address``, each worker given ``script``'s code
    and the data file at ``data_path`` (None: Keras's downloaded copy)."""

    def __init__(self, address, script, data_path):
        self.address, self.script, self.data_path = address, script, data_path
        self.workers = None  # known once connected

    def describe(self, jobs):
        return f"as tasks of the Dask cluster at {self.address}"

    def slots(self, jobs):
        """How many of ``jobs`` train at once: one per worker thread, once connected."""
        return max(1, min(self.workers or 1, jobs))

    def run(self, task, jobs, load):
        """``Trainings.run`` as tasks of the cluster; a stop, or leaving the loop, cancels them."""
        jobs = list(jobs)
        if not jobs:
            return
        from distributed import as_completed

        client = self._connect()
        futures = []
        try:
            with tempfile.TemporaryDirectory() as folder:
                client.register_plugin(_upload_code(folder), name=CODE_FOLDER)  # restarts the workers
            self._note_versions(client)
            shipped = client.scatter(_data_file(self.data_path), broadcast=True, hash=True)
            payload = pickle.dumps((task, load))  # by reference: the worker imports the script first
            backend = os.environ.get("KERAS_BACKEND", lab.SCRIPTS[self.script]["backend"])
            futures = [client.submit(work, self.script, backend, payload, shipped, job, pure=False,
                                     key=f"mnistlab-{self.script}-{job}-{os.getpid()}") for job in jobs]
            by_future = dict(zip(futures, jobs))
            for future in as_completed(futures, loop=client.loop):
                yield by_future[future], self._result(future)
        except (OSError, CancelledError) as exc:  # the scheduler gone: its connection closed, timed out
            if client.status == "running":  # connected still: every worker that held the data died
                raise LabError("the Dask cluster lost the data sent to it (every worker that held it "
                               "stopped); what had finished is saved: rerun the same command") from exc
            raise LabError(f"lost the Dask scheduler at {self.address} ({type(exc).__name__}); what had "
                           f"finished is saved: {START_HINT}, then rerun the same command") from exc
        finally:
            with contextlib.suppress(Exception):
                client.cancel(futures)
            with contextlib.suppress(Exception):
                client.close(timeout=CONNECT_SECONDS)

    def _connect(self):
        from distributed import Client

        # What goes wrong reaches the user as the one line of a LabError, not Dask's log lines.
        for name in list(logging.root.manager.loggerDict):
            if name.split(".")[0] == "distributed":
                logging.getLogger(name).setLevel(logging.CRITICAL)

        target = scheduler_address(self.address)
        try:
            client = Client(target, timeout=CONNECT_SECONDS, set_as_default=False)
        except (OSError, ValueError) as exc:
            raise LabError(f"cannot reach the Dask scheduler at {target} ({type(exc).__name__}); {START_HINT}, "
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
        """Name, in one line, the workers whose Keras, JAX or TensorFlow differ from ours."""
        ours = package_versions()
        differing = [f"{worker} ({_differences(theirs, ours)})"
                     for worker, theirs in sorted(client.run(package_versions).items()) if theirs != ours]
        if differing:
            here = ", ".join(f"{name} {version}" for name, version in ours.items() if version)
            print(f"warning: workers with other versions than this machine's ({here}), whose numbers may "
                  f"differ from a run here: {'; '.join(differing)}", file=sys.stderr, flush=True)

    def _result(self, future):
        from distributed import KilledWorker

        try:
            return future.result()
        except ModuleNotFoundError as exc:
            raise LabError(f"a Dask worker cannot import the lab's code ({exc}); start workers with "
                           "`dask worker ADDRESS` (with its nanny, which receives the code), not --no-nanny") from exc
        except KilledWorker as exc:
            raise LabError(f"Dask workers kept dying on one task ({exc}); check the workers' memory and "
                           "logs, then rerun the same command") from exc


def package_versions():
    """The installed versions of the packages that make a trial's numbers (None if absent)."""
    return {name: backend.version(name) for name in VERSIONED}


def _differences(theirs, ours):
    return ", ".join(f"{name} {theirs.get(name) or 'missing'}" for name in VERSIONED if theirs.get(name) != ours.get(name))


def _upload_code(folder):
    """Dask's plugin that puts the lab's code on every worker, now and as workers join."""
    from distributed.diagnostics.plugin import UploadDirectory

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = os.path.join(folder, CODE_FOLDER)
    shutil.copytree(os.path.join(root, "mnistlab"), os.path.join(code, "mnistlab"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    for script in lab.SCRIPTS:
        shutil.copy(os.path.join(root, f"{script}.py"), code)
    return UploadDirectory(code, restart_workers=True, update_path=True, mode="all")  # the scheduler reads tasks too


def _data_file(path):
    """The bytes of the data file the workers load: ``path``, or Keras's downloaded copy."""
    source = data.resolve_source(path) or data.downloaded_file()
    if source is None:
        raise LabError(f"no local MNIST file to send to the Dask workers; {data.OFFLINE_HINT}")
    with open(source, "rb") as f:
        return f.read()


class _Unpickler(pickle.Unpickler):
    """Finds the functions of a script run from the terminal (``__main__`` on the driver) in
    that script's module."""

    def __init__(self, file, script):
        super().__init__(file)
        self.script = script

    def find_class(self, module, name):
        if module in ("__main__", "__mp_main__"):
            module = self.script
        return super().find_class(module, name)


# On a worker


def work(script, backend, payload, shipped, job):
    """Run one job on a Dask worker: Keras on the driver's backend, the script's task and loader
    from ``payload``, the data from the file bytes ``shipped`` (loaded once per worker)."""
    # One training at a time, whatever the worker's --nthreads.
    with _worker["lock"], _own_python_random():
        keras = sys.modules.get("keras")
        if keras and keras.backend.backend() != backend:  # another driver's run, since the restart
            raise LabError(f"Dask worker runs Keras on {keras.backend.backend()}, this run on {backend}: "
                           "run one study at a time on the cluster, or restart its workers")
        os.environ["KERAS_BACKEND"] = backend  # before the script's import loads Keras
        _single_threaded()
        importlib.import_module(script)
        task, load = _Unpickler(io.BytesIO(payload), script).load()
        return task(_worker_data(shipped, load), job)


def _single_threaded():
    """Train on one thread, as a local pool's worker does: a product split over threads sums in
    another order, and 40 epochs later the numbers differ from a local run's."""
    if SINGLE_THREADED_XLA not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {SINGLE_THREADED_XLA}".strip()
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ.setdefault(name, "1")


@contextlib.contextmanager
def _own_python_random():
    """``random.seed`` and ``random.randint`` (Keras's seeds for initial weights) on this task's
    own generator: the worker's event loop draws from the shared one meanwhile (its timers'
    jitter), which would make the initial weights depend on timing."""
    own, shared = random.Random(), {name: getattr(random, name) for name in ("seed", "randint")}
    for name in shared:
        setattr(random, name, getattr(own, name))
    try:
        yield
    finally:
        for name, function in shared.items():
            setattr(random, name, function)


def _worker_data(shipped, load):
    """``load(file)`` of the shipped file, kept for the next job of the same data and loader."""
    key = hashlib.sha256(shipped).hexdigest() + repr(load)
    if _worker["data"] is None or _worker["data"][0] != key:
        _worker["data"] = None  # the previous data freed before the next is loaded
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "mnist.npz")
            with open(path, "wb") as f:
                f.write(shipped)
            _worker["data"] = key, load(path)
    return _worker["data"][1]
