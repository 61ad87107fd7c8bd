"""How the scripts run: the backend choice, the Keras internals the training relies on, and
trainings side by side in worker processes."""

import functools
import json
import multiprocessing
import os
import subprocess
import sys
import time
import warnings

import pytest

from conftest import ROOT, user_env
from mnistlab import backend, data, parallel
from mnistlab.cli import LabError

# Chooses JAX, then does everything that used to pull TensorFlow into a JAX process: seeding,
# describing a layer, saving and loading a model.
JAX_PROBE = """
import json, sys
from mnistlab import backend
keras = backend.load(backend.choose("jax"))
chosen = keras.backend.backend()
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
model.layers[0].get_config()
model.save(sys.argv[1])
reloaded = keras.models.load_model(sys.argv[1])
print(json.dumps({"chosen": chosen, "backend": keras.backend.backend(),
                  "tensorflow_imported": sys.modules.get("tensorflow") is not None,
                  "reloaded_params": reloaded.count_params()}))
"""


def probe(tmp_path, **env):
    result = subprocess.run([sys.executable, "-c", JAX_PROBE, str(tmp_path / "m.keras")],
                            capture_output=True, text=True, cwd=ROOT, timeout=300,
                            env={"PATH": os.environ["PATH"], **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_on_jax_keras_never_imports_tensorflow(tmp_path):
    assert probe(tmp_path) == {"chosen": "jax", "backend": "jax", "tensorflow_imported": False,
                               "reloaded_params": 15}


@pytest.mark.slow
def test_keras_backend_variable_overrides_the_default(tmp_path):
    found = probe(tmp_path, KERAS_BACKEND="tensorflow")
    assert found["chosen"] == found["backend"] == "tensorflow" and found["tensorflow_imported"]


def test_the_keras_internals_the_project_uses_are_still_there():
    """mnistlab/internals.py, the one module that reaches into Keras's private parts, uses Keras's
    lazy handle on TensorFlow, its array adapter's tf.data pipeline, its JAX epoch iterator, a
    model's _symbolic_build and train_step; the training backups use only public calls. A Keras
    that renames any of them must fail here."""
    import pathlib
    import re

    import keras
    from keras.src.backend.jax.trainer import JAXEpochIterator
    from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter
    from keras.src.utils import module_utils

    assert hasattr(module_utils.tensorflow, "_available") and callable(ArrayDataAdapter.get_tf_dataset)
    assert callable(JAXEpochIterator) and callable(keras.Model._symbolic_build) and callable(keras.Model.train_step)
    for path in pathlib.Path(ROOT, "mnistlab").rglob("*.py"):  # nowhere else
        assert path.name == "internals.py" or not re.search(r"keras\.src|model\._|train_function =", path.read_text())


def describe_worker(offset, job):
    """A job for the pool: its result, and which process on which cores computed it."""
    time.sleep(0.5)  # long enough that the other worker, started at the same time, takes jobs too
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return offset + job * job, os.getpid(), cores


@pytest.mark.slow
@pytest.mark.skipif(parallel.usable_cores() < 2, reason="needs 2 CPU cores")
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="this OS cannot pin a process to a core")
def test_workers_each_pinned_to_its_own_core_do_every_job():
    other = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(60,))  # the caller's own
    other.start()
    try:
        done = dict(parallel.run(describe_worker, range(6), functools.partial(int, "100"), workers=2))
        assert other.is_alive()  # the pool ends its own workers, and no other process
    finally:
        other.terminate()
    assert sorted(done) == list(range(6))
    assert all(result == 100 + job * job for job, (result, _, _) in done.items())
    processes = {pid: tuple(cores) for _, pid, cores in done.values()}
    assert os.getpid() not in processes and len(processes) == 2
    assert all(len(cores) == 1 for cores in processes.values())
    assert len(set(processes.values())) == 2  # two different cores


def test_one_worker_runs_here_in_order():
    done = list(parallel.run(describe_worker, [3, 1, 2], functools.partial(int, "0"), workers=1))
    assert [job for job, _ in done] == [3, 1, 2]
    assert {pid for _, (_, pid, _) in done} == {os.getpid()}


def trainings_watched(jobs, seen, ended):
    """``jobs`` results, noting in ``seen`` each one asked for, and in ``ended`` that they stopped."""
    try:
        for job in range(jobs):
            seen.append(f"result {job}")
            yield job
    finally:
        ended.append(True)


@pytest.mark.parametrize("jobs, slots, work_after", [(5, 2, 4), (2, 2, 1), (1, 2, 0), (2, 3, 0), (3, 1, None),
                                                     (0, 2, None)])
def test_work_beside_the_trainings_starts_once_a_slot_is_idle(jobs, slots, work_after):
    seen, ended = [], []
    results = parallel.with_work_beside(trainings_watched(jobs, seen, ended), jobs, slots,
                                        lambda: seen.append("work"))
    assert list(results) == list(range(jobs)) and ended == [True] * bool(jobs)  # none started: none to end
    # the results asked for before it: then fewer than the slots still train, and at least one
    assert (seen.index("work") if "work" in seen else None) == work_after


def test_a_stop_in_the_work_beside_the_trainings_ends_them():
    seen, ended = [], []

    def stopped():
        raise KeyboardInterrupt
    results = parallel.with_work_beside(trainings_watched(3, seen, ended), 3, 2, stopped)
    with pytest.raises(KeyboardInterrupt):
        list(results)
    assert seen == ["result 0", "result 1"] and ended == [True]


@pytest.mark.slow
@pytest.mark.skipif(parallel.usable_cores() < 2, reason="needs 2 CPU cores")
def test_a_workers_failure_reaches_the_caller_as_a_clear_error(tmp_path):
    missing = functools.partial(data.load_mnist, str(tmp_path / "missing.npz"))
    with pytest.raises(LabError, match="data file not found"):
        list(parallel.run(describe_worker, range(2), missing, workers=2))


def test_without_cpu_affinity_workers_are_counted_and_not_pinned(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.delattr(os, "sched_setaffinity", raising=False)
    if hasattr(os, "process_cpu_count"):  # as Python 3.13 has it where it cannot ask for affinity
        monkeypatch.setattr(os, "process_cpu_count", os.cpu_count)
    cores = os.cpu_count()
    assert parallel.usable_cores() == cores
    assert parallel.default_workers() == min(cores, parallel.MAX_DEFAULT_WORKERS)
    assert parallel.core_ids(2) == [None, None]


def test_on_a_gpu_trainings_run_one_at_a_time_and_take_only_the_memory_they_use(monkeypatch):
    monkeypatch.setattr(backend, "gpu_reported", lambda: True)
    assert parallel.default_workers() == 1
    monkeypatch.setattr(backend, "gpu_reported", lambda: False)
    assert parallel.default_workers() == min(parallel.usable_cores(), parallel.MAX_DEFAULT_WORKERS)
    for name in ("XLA_PYTHON_CLIENT_PREALLOCATE", "TF_FORCE_GPU_ALLOW_GROWTH"):
        monkeypatch.delenv(name, raising=False)
    backend.share_gpu()
    assert os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false" and os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "true")  # the user's own choice stays
    backend.share_gpu()
    assert os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "true"


@pytest.mark.skipif(backend.gpu_reported(), reason="this machine has a GPU")
def test_each_record_names_the_device_it_trained_on():
    assert backend.device() == f"CPU: {backend.cpu_name()}"  # no GPU on the machines the tests run on
    assert backend.environment()["device"] == backend.device()


def test_the_cuda_probe_of_a_machine_without_a_gpu_is_start_up_chatter():
    line = ("2026-11-30 21:31:18.044265: E external/local_xla/xla/stream_executor/cuda/cuda_platform.cc:51] "
            "failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)")
    assert backend.CHATTER.match(line) and not backend.CHATTER.match("ValueError: a real error")


def test_tensorflow_2_20s_own_start_up_lines_are_chatter():
    """Colab's TensorFlow 2.20 writes its INFO lines in its own format where TF_CPP_MIN_LOG_LEVEL=0
    lets them through (the Colab test met them)."""
    for line in ("2026-12-03 18:22:52.058269: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:31] Could not "
                 "find cuda drivers on your machine, GPU will not be used.",
                 "2026-12-03 18:22:52.059243: I tensorflow/core/util/port.cc:153] oneDNN custom operations are on."):
        assert backend.CHATTER.match(line)
    assert not backend.CHATTER.match("2026-12-03 18:22:52: a line of the user's own program")


KEEPS_A_PROGRAM = """
import jax, jax.numpy as jnp
jax.jit(lambda x: x * 2 + 1)(jnp.arange(3.0)).block_until_ready()
"""


@pytest.mark.parametrize("writable", [True, False])
def test_jax_keeps_its_compiled_programs_in_the_users_cache_folder(writable, monkeypatch, tmp_path):
    """On JAX a rerun loads the training steps it compiled before (the same programs, so the same
    numbers); where no cache folder can be written, it compiles as before, silently."""
    cache = tmp_path / "cache"
    if writable:
        cache.mkdir()
    else:
        cache.write_text("a file where the cache folder goes")
    for variable in ("JAX_COMPILATION_CACHE_DIR", *backend.JAX_CACHE):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(warnings, "filters", list(warnings.filters))
    backend.choose("jax")
    if writable:
        assert os.environ["JAX_COMPILATION_CACHE_DIR"] == str(cache / "mnistlab" / "jax")
        assert os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] == "0"
        with warnings.catch_warnings(record=True) as shown:  # a full disk under the cache: compiled again
            warnings.warn("Error writing persistent compilation cache entry for 'jit_step': OSError: disk full")
        assert shown == []
        # and JAX really keeps a program there with these settings (a warning would mean it cannot)
        compiled = subprocess.run([sys.executable, "-W", "error", "-c", KEEPS_A_PROGRAM], capture_output=True, text=True,
                                  cwd=ROOT, env=user_env({"KERAS_BACKEND": "jax"}), timeout=120)
        assert compiled.returncode == 0 and compiled.stderr == "", compiled.stderr
        assert os.listdir(cache / "mnistlab" / "jax")
    else:
        assert "JAX_COMPILATION_CACHE_DIR" not in os.environ
