"""Failures off the happy path, as a user meets them from the terminal: each ends with exactly one
line on stderr naming the problem and the fix, exit code 2, nothing half-written, and nothing
the user made lost; a stop by a signal saves what had finished and the same command goes on.

These run the scripts as subprocesses: imports, stderr and signals belong to the process.
"""

import errno
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, run_script, strict_json, user_env
from mnistlab import parallel

pytestmark = pytest.mark.slow  # users' failures, met in subprocesses as a user meets them

SCRIPTS = ("mlp_mnist.py", "cnn_mnist.py", "denoise_autoencoder.py")
# Settings that make each script's run take seconds on the tests' tiny data.
SMALL = {"mlp_mnist.py": ["--epochs", "3", "--hidden", "8"],
         "cnn_mnist.py": ["--epochs", "3", "--batch-size", "64"],
         "denoise_autoencoder.py": ["--epochs", "3", "--levels", "0.5", "--draws", "1",
                                    "--classifier-epochs", "1"]}


def one_line_error(result, *fragments):
    """Exit code 2 and a stderr of exactly one line, holding every fragment."""
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n"), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    return result.stderr


@pytest.fixture
def no_keras(tmp_path):
    """An environment where importing Keras fails loudly: what answers there answered before Keras loaded."""
    return fake_keras(tmp_path, "raise SystemExit('keras was imported')\n")


def fake_keras(tmp_path, body):
    """A ``keras`` package whose import runs ``body``: what happens while the libraries load."""
    fake = tmp_path / "fake_keras" / "keras"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(body)
    return {"PYTHONPATH": str(fake.parent)}


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("case", ["zero epochs", "mistyped flag", "seed too large", "negative seed",
                                  "missing data file", "unknown backend", "inference-only backend",
                                  "backend not installed", "help"])
def test_answers_before_keras_loads(script, case, no_keras, tmp_path):
    flags, env, fragments = {
        "zero epochs": (["--epochs", "0"], {}, ["--epochs: must be a positive whole number, got 0"]),
        "mistyped flag": (["--epocs", "3"], {}, ["unrecognized arguments: --epocs 3", "see --help"]),
        "seed too large": (["--seed", str(2**32)], {}, ["--seed: must be a whole number from 0 to 2147483647"]),
        "negative seed": (["--seed=-5"], {}, ["--seed: must be a whole number from 0 to 2147483647"]),
        "missing data file": (["--data", str(tmp_path / "none.npz")], {}, ["data file not found", "MNIST_NPZ"]),
        "unknown backend": ([], {"KERAS_BACKEND": "tensorflw"},
                            ["KERAS_BACKEND=tensorflw is not a Keras backend", "jax, tensorflow, torch"]),
        "inference-only backend": ([], {"KERAS_BACKEND": "numpy"}, ["KERAS_BACKEND=numpy cannot train models"]),
        "backend not installed": ([], {"KERAS_BACKEND": "torch"}, ["torch is not installed", "pip install torch"]),
        "help": (["--help"], {}, []),
    }[case]
    if case == "backend not installed" and importlib.util.find_spec("torch"):
        pytest.skip("torch is installed here")
    result = run_script(script, *flags, "--out", str(tmp_path / "out"), env={**no_keras, **env})
    if case == "help":
        assert result.returncode == 0 and result.stderr == "" and "--seed SEED" in result.stdout
        return
    line = one_line_error(result, f"{script}: error: ", *fragments)
    assert "keras was imported" not in line
    assert not (tmp_path / "out").exists()


def corrupt_run(out, script_name, run_json):
    """A run folder of ``script_name`` whose run.json is ``run_json`` (truncated or edited)."""
    folder = out / "runs" / f"{script_name}-20261125-120000"
    (folder / "results").mkdir(parents=True)
    (folder / "run.json").write_text(run_json)
    return folder / "run.json"


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("content, problem", [('{"script": "mlp_mnist", "status": "runn', "is not valid JSON"),
                                              ('{"status": "running"}', "lacks script, status, started"),
                                              ("[1, 2]", "lacks script, status, started")])
def test_a_corrupt_run_record_is_refused_by_name_and_kept(script, content, problem, tiny_npz, tmp_path):
    path = corrupt_run(tmp_path, script[:-3], content)
    result = run_script(script, "--data", tiny_npz, *SMALL[script], "--out", str(tmp_path))
    one_line_error(result, str(path), problem, "move it aside or delete it")
    assert path.read_text() == content  # never thrown away
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [path.parent.name]


def interrupted_study(tiny_npz, out):
    """A study run stopped after its first trial, as Ctrl-C leaves it."""
    result = run_with_stop(["mlp_mnist.py", "--data", tiny_npz, "--study", "--epochs", "1", "--study-epochs", "1",
                            "--study-hidden", "8", "--l2", "1e-4", "1e-3", "--replicates", "1", "--workers", "1",
                            "--out", str(out)], signal.SIGINT, after="_trials.json")
    assert result.returncode == 130, result.stderr
    [store] = (out / "runs").glob("*/results/mlp_l2_study_trials.json")
    return store


def test_a_corrupt_trial_store_is_refused_by_name_and_kept(tiny_npz, tmp_path):
    from mnistlab import l2_study
    from mnistlab.cli import LabError

    store = interrupted_study(tiny_npz, tmp_path)
    store.write_text('{"trials": [{"l2": 0.0001')
    result = run_script("mlp_mnist.py", "--data", tiny_npz, "--study", "--epochs", "1", "--study-epochs", "1",
                        "--study-hidden", "8", "--l2", "1e-4", "1e-3", "--replicates", "1", "--workers", "1",
                        "--out", str(tmp_path))
    one_line_error(result, str(store), "is not valid JSON")
    assert store.read_text() == '{"trials": [{"l2": 0.0001'
    for content, problem in (('{"trial": []}', "lacks trials"), ('{"trials": [{"l2": "big"}]}', "trials of an unexpected form")):
        store.write_text(content)  # the same check, read as the rerun reads it
        with pytest.raises(LabError, match=problem):
            l2_study.read_trials(str(store))
        assert store.read_text() == content


def limited_file_size(limit):
    """In the child: files may not grow past ``limit`` bytes, as on a disk that fills up."""
    resource = pytest.importorskip("resource")  # POSIX only

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("limit", [6_000, 60_000])
def test_a_full_disk_ends_with_one_line_and_keeps_the_earlier_files(script, limit, tiny_npz, tmp_path):
    for kind in ("plots", "results"):  # an earlier lab's published files: the repo's own
        shutil.copytree(os.path.join(ROOT, kind), tmp_path / kind)
    args = [sys.executable, os.path.join(ROOT, script), "--data", tiny_npz, *SMALL[script], "--out", str(tmp_path)]
    published = {p: p.read_bytes() for kind in ("plots", "results") for p in (tmp_path / kind).iterdir()}

    result = subprocess.run(args + ["--lr", "0.02"], capture_output=True, text=True, cwd=ROOT, env=user_env(),
                            preexec_fn=limited_file_size(limit))
    one_line_error(result, f"{script}: error: cannot write", "free some space or pass --out to another folder")
    assert {p: p.read_bytes() for p in published} == published  # the earlier complete files, untouched
    leftovers = [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]
    assert leftovers == []


STOPPER = """
import os, runpy, signal, sys
from mnistlab import lab
# Keras on the script's own backend, as the script would load it, before training imports Keras:
os.environ.setdefault("KERAS_BACKEND", lab.SCRIPTS[os.path.basename(sys.argv[3])[:-3]]["backend"])
from mnistlab import training
# As in a terminal, whatever the test runner's parent ignores (nohup, a background job), or
# as under nohup when NOHUP is set:
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGTERM, signal.SIG_DFL)
if hasattr(signal, "SIGHUP"):
    signal.signal(signal.SIGHUP, signal.SIG_IGN if os.environ.get("NOHUP") else signal.SIG_DFL)
stop_signal, after = int(sys.argv[1]), sys.argv[2]

def stop():
    os.kill(os.getpid(), stop_signal)

if after == "epoch":  # once epoch 2 is finished and backed up
    class StopAfterEpoch2(training.BackupAndRestore):
        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            if epoch == 1:
                stop()
    training.BackupAndRestore = StopAfterEpoch2
elif after == "backup-write":  # half-way through writing epoch 3's backup
    import keras
    real_save_weights = keras.Model.save_weights
    def save_weights(self, filepath, *args, **kwargs):
        real_save_weights(self, filepath, *args, **kwargs)
        if os.path.basename(filepath).startswith("epoch-3."):  # its temporary name, until whole
            with open(filepath, "r+b") as f:
                f.truncate(os.path.getsize(filepath) // 2)
            stop()
    keras.Model.save_weights = save_weights
elif after == "pool-start":  # while the study's worker pool starts: its first worker started, the next not
    import multiprocessing.process
    real_start = multiprocessing.process.BaseProcess.start
    def start(self):
        real_start(self)
        stop()
    multiprocessing.process.BaseProcess.start = start
elif after == "trace":  # while TensorFlow traces the first training step (a Conv2D's call in fit's graph)
    import keras
    real_fit, real_call, fitting = keras.Model.fit, keras.layers.Conv2D.call, []
    def fit(self, *args, **kwargs):
        fitting.append(True)
        return real_fit(self, *args, **kwargs)
    def call(self, inputs):  # the same signature: Keras reads it
        import tensorflow as tf
        if fitting and not tf.executing_eagerly():
            stop()
        return real_call(self, inputs)
    keras.Model.fit, keras.layers.Conv2D.call = fit, call
elif after.startswith("batch:"):  # inside the first fit of the model named so, after its first steps
    class StopInside(training.StopOnDivergence):
        def on_train_batch_end(self, batch, logs=None):
            if self.model.name == after[6:]:
                stop()
    training.StopOnDivergence = StopInside
else:  # once the first file whose name ends with AFTER (a study trial, an autoencoder's weights) is written
    from mnistlab import records
    real_write = records.write_atomic
    def write_atomic(path, write, **kwargs):
        real_write(path, write, **kwargs)
        if path.endswith(after):
            stop()
    records.write_atomic = write_atomic
sys.argv = sys.argv[3:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_with_stop(argv, signum, after="epoch", nohup=False, env=None):
    """Run a lab script that gets signal ``signum`` from outside once epoch 2 (or a trial) is
    done; ``nohup``: started as ``nohup`` starts it, with SIGHUP ignored."""
    return subprocess.run([sys.executable, "-c", STOPPER, str(int(signum)), after,
                           os.path.join(ROOT, argv[0]), *argv[1:]],
                          capture_output=True, text=True, cwd=ROOT,
                          env=user_env({"PYTHONPATH": ROOT, **({"NOHUP": "1"} if nohup else {}), **(env or {})}))


POSIX = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@POSIX
@pytest.mark.parametrize("script, signal_name, platform", [
    ("mlp_mnist.py", "SIGTERM", "this one"), ("mlp_mnist.py", "SIGHUP", "this one"),
    ("mlp_mnist.py", "SIGINT", "without SIGHUP or CPU affinity"),
    ("denoise_autoencoder.py", "SIGTERM", "without SIGHUP or CPU affinity")])
def test_kill_and_a_closed_terminal_stop_like_ctrl_c_and_the_run_goes_on(script, signal_name, platform, tiny_npz,
                                                                        other_platform, tmp_path):
    signum = getattr(signal, signal_name)
    env = other_platform if platform != "this one" else {}
    argv = [script, "--data", tiny_npz, *SMALL[script], "--out", str(tmp_path)]
    stopped = run_with_stop(argv, signum, env=env)
    assert stopped.returncode == 128 + signum
    assert stopped.stderr == (f"{script}: stopped ({signal_name}); what had finished is saved, "
                              "rerun the same command to go on\n")
    [folder] = (tmp_path / "runs").iterdir()
    assert json.loads((folder / "run.json").read_text())["status"].endswith(" at epoch 3")

    result = run_script(*argv, env=env)
    assert result.returncode == 0 and result.stderr == ""
    assert f"Resuming run {folder.name}" in result.stdout and "after epoch 2 of 3" in result.stdout
    assert "Epoch 1/3" not in result.stdout.split("Resuming")[1].split("Test ")[0]
    record = json.loads((folder / "run.json").read_text())
    main = json.loads((folder / "results" / f"{record['records'][0]}.json").read_text())
    assert all(len(values) == 3 for values in main["history"].values())


@POSIX
@pytest.mark.skipif(parallel.usable_cores() < 2, reason="needs 2 CPU cores")
def test_a_stop_while_the_autoencoder_trains_beside_the_per_level_ones_ends_their_workers_too(tiny_npz, tmp_path):
    argv = ["denoise_autoencoder.py", "--data", tiny_npz, *SMALL["denoise_autoencoder.py"], "--per-level",
            "--levels", "0", "0.5", "--workers", "2", "--out", str(tmp_path)]
    stopped = run_with_stop(argv, signal.SIGTERM)  # after the main autoencoder's epoch 2
    # stderr is read to its end, the workers' too: none is left behind
    assert stopped.returncode == 128 + signal.SIGTERM
    assert stopped.stderr == ("denoise_autoencoder.py: stopped (SIGTERM); what had finished is saved, "
                              "rerun the same command to go on\n")
    assert "Training 2 autoencoders for the noise levels of the accuracy study, 2 at a time" in stopped.stdout
    [folder] = (tmp_path / "runs").iterdir()
    meta = json.loads((folder / "run.json").read_text())
    assert meta["status"] == "interrupted in autoencoder at epoch 3"
    assert meta["parts"]["autoencoder"]["within"] == "per-level autoencoders"

    result = run_script(*argv)
    assert result.returncode == 0 and result.stderr == ""
    assert "after epoch 2 of 3" in result.stdout, result.stdout
    meta = json.loads((folder / "run.json").read_text())
    assert {name: part["status"] for name, part in meta["parts"].items()} == dict.fromkeys(
        ("per-level autoencoders", "autoencoder", "accuracy study"), "complete")
    record = json.loads((folder / "results" / "denoise_autoencoder.json").read_text())
    assert len(record["history"]["loss"]) == 3 and "retrained around each noise level" in record["study_mode"]


@POSIX
def test_a_run_under_nohup_goes_on_when_its_terminal_closes(tiny_npz, tmp_path):
    argv = ["mlp_mnist.py", "--data", tiny_npz, *SMALL["mlp_mnist.py"], "--out", str(tmp_path)]
    result = run_with_stop(argv, signal.SIGHUP, nohup=True)
    assert result.returncode == 0 and result.stderr == ""
    [folder] = (tmp_path / "runs").iterdir()
    assert json.loads((folder / "run.json").read_text())["status"] == "complete"


def test_a_failed_write_keeps_the_earlier_file_and_leaves_no_temporary(tmp_path):
    import errno

    from mnistlab import records
    from mnistlab.cli import LabError

    path = tmp_path / "record.json"
    records.write_json(path, {"epochs": 3})

    def disk_full(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(LabError, match=f"cannot write record.json in {tmp_path} \\(No space left on device\\); "
                                       "free some space or pass --out to another folder"):
        records.write_atomic(str(path), disk_full)
    assert json.loads(path.read_text()) == {"epochs": 3}
    assert os.listdir(tmp_path) == ["record.json"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_answers_on_a_platform_without_sighup_or_cpu_affinity(script, other_platform, no_keras):
    env = {**other_platform, "PYTHONPATH": os.pathsep.join([no_keras["PYTHONPATH"], other_platform["PYTHONPATH"]])}
    result = run_script(script, "--help", env=env)
    assert result.returncode == 0 and result.stderr == ""
    assert "--seed SEED" in result.stdout
    if script != "cnn_mnist.py":  # the scripts with workers: one per core Python can see
        workers = " ".join(result.stdout.split()).split("--workers WORKERS")[-1]
        assert f"(default: {min(os.cpu_count(), 4)}, one per core up to 4; 1 with --quick" in workers


@POSIX
def test_a_run_killed_while_writing_its_backup_goes_on_from_the_last_whole_epoch(tiny_npz, tmp_path):
    """Killed (SIGKILL), then the same command stopped (SIGTERM), each half-way through epoch 3's backup."""
    argv = ["mlp_mnist.py", "--data", tiny_npz, *SMALL["mlp_mnist.py"], "--out", str(tmp_path)]
    for signum in (signal.SIGKILL, signal.SIGTERM):
        stopped = run_with_stop(argv, signum, after="backup-write")
        [folder] = (tmp_path / "runs").iterdir()
        backup = folder / "state" / "backup" / "mlp_mnist"
        if signum == signal.SIGKILL:  # no word, no chance to tidy up: the half-written file is left, under its temporary name
            assert stopped.returncode == -signal.SIGKILL and stopped.stderr == ""
            assert len(list(backup.glob("epoch-3.tmp-*.weights.h5"))) == 1 and not (backup / "epoch-3.weights.h5").exists()
        else:
            assert stopped.returncode == 128 + signum
            assert stopped.stderr.count("\n") == 1 and "stopped (SIGTERM)" in stopped.stderr
        assert json.loads((backup / "training_metadata.json").read_text())["weights"] == "epoch-2.weights.h5"

    result = run_script(*argv)
    assert result.returncode == 0 and result.stderr == ""
    assert f"Resuming run {folder.name}" in result.stdout and "after epoch 2 of 3" in result.stdout
    record = json.loads((folder / "results" / "mlp_mnist.json").read_text())
    assert record["status"] == "complete" and all(len(v) == 3 for v in record["history"].values())


def as_in_a_terminal():
    """In the child: Ctrl-C and a closed terminal act, whatever the test runner ignores (nohup, a background job)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@POSIX
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_a_stop_while_the_libraries_load_is_one_line(signal_name, tiny_npz, tmp_path):
    """The stop waits for Keras's import to end (one inside TensorFlow's can abort the process),
    then ends the script with its line."""
    env = fake_keras(tmp_path, f"import os, signal, time\nos.kill(os.getpid(), signal.{signal_name})\ntime.sleep(1)\n")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "cnn_mnist.py"), "--data", tiny_npz,
                             "--out", str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT,
                            env=user_env(env), timeout=60, start_new_session=True,
                            preexec_fn=as_in_a_terminal)
    signum = getattr(signal, signal_name)
    assert result.returncode == 128 + signum, result.stderr
    assert result.stderr == (f"cnn_mnist.py: stopped ({signal_name}); what had finished is saved, "
                             "rerun the same command to go on\n")


STOP_AT_FIRST_IMPORT = """
import builtins, os, signal
_real = builtins.__import__
def _stop_at_numpy(name, *args, **kwargs):
    if name == "numpy" and not getattr(_stop_at_numpy, "done", False):
        _stop_at_numpy.done = True
        os.kill(os.getpid(), signal.{signal_name})
    return _real(name, *args, **kwargs)
builtins.__import__ = _stop_at_numpy
"""


@POSIX
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("command, prog", [(["mlp_mnist.py"], "mlp_mnist.py"),
                                           (["-m", "mnistlab.runs"], "python -m mnistlab.runs")])
def test_a_stop_at_the_first_instant_is_one_line(command, prog, signal_name, tmp_path):
    """A stop at the first import the command makes (numpy's, before its flags are read)."""
    (tmp_path / "sitecustomize.py").write_text(STOP_AT_FIRST_IMPORT.format(signal_name=signal_name))
    result = subprocess.run([sys.executable, *command, "--out", str(tmp_path / "out")], capture_output=True,
                            text=True, cwd=ROOT, env=user_env({"PYTHONPATH": str(tmp_path)}), timeout=60,
                            start_new_session=True, preexec_fn=as_in_a_terminal)
    assert result.returncode == 128 + getattr(signal, signal_name), result.stderr
    assert result.stderr == f"{prog}: stopped ({signal_name}); what had finished is saved, rerun the same command to go on\n"
    assert not (tmp_path / "out").exists()


def test_an_odd_environment_changes_nothing(tiny_npz, tmp_path):
    """stdout closed, a terminal 5 columns wide, a Keras config asking for channels_first, a
    locale without UTF-8, and an output path with a newline and a byte that is not UTF-8."""
    keras_home = tmp_path / "keras_home"
    keras_home.mkdir()
    (keras_home / "keras.json").write_text('{"image_data_format": "channels_first"}')
    out = os.fsencode(str(tmp_path)) + b"/odd\nname\xff"
    result = subprocess.run([sys.executable, os.path.join(ROOT, "cnn_mnist.py"), "--data", tiny_npz,
                             *SMALL["cnn_mnist.py"], "--out", out], stderr=subprocess.PIPE, cwd=ROOT,
                            env=user_env({"KERAS_HOME": str(keras_home), "COLUMNS": "5", "LC_ALL": "C"}),
                            preexec_fn=lambda: os.close(1))
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-3000:]
    assert result.stderr == b""
    [folder] = (tmp_path / os.fsdecode(b"odd\nname\xff") / "runs").iterdir()
    strict_json(folder / "results" / "cnn_mnist.json")

    missing = tmp_path / "no\nsuch.npz"
    one_line_error(run_script("cnn_mnist.py", "--data", str(missing)), "data file not found", "no\\nsuch.npz")


@pytest.mark.parametrize("case", ["started is a number", "history lists are empty", "history is a list"])
def test_a_hand_edited_record_is_named_in_one_line(case, tmp_path):
    folder = tmp_path / "runs" / "mlp_mnist-20261125-120000"
    (folder / "results").mkdir(parents=True)
    meta = {"script": "mlp_mnist", "status": "complete", "started": "2026-11-25T12:00:00", "changed": [],
            "records": ["mlp_mnist"]}
    record = {"status": "complete", "history": {"loss": [0.5], "val_accuracy": [0.9]}}
    if case == "started is a number":
        meta["started"] = 20261125
    elif case == "history lists are empty":
        record["history"] = {"loss": [], "val_accuracy": []}
    else:
        record["history"] = [0.5, 0.4]
    (folder / "run.json").write_text(json.dumps(meta))
    (folder / "results" / "mlp_mnist.json").write_text(json.dumps(record))
    for command in (["--out", str(tmp_path)], ["compare", "--out", str(tmp_path), "mlp_mnist-"]):
        result = subprocess.run([sys.executable, "-m", "mnistlab.runs", *command], capture_output=True,
                                text=True, cwd=ROOT, env=user_env())
        bad = "run.json" if case == "started is a number" else "mlp_mnist.json"
        one_line_error(result, "python -m mnistlab.runs: error: ", bad, "edited by hand?")


@pytest.mark.parametrize("script, flags", [("mlp_mnist.py", ["--hidden", "200000", "200000"]),
                                           ("mlp_mnist.py", ["--study", "--study-hidden", "300000", "300000"]),
                                           ("denoise_autoencoder.py", ["--hidden", "90000000"])])
def test_a_model_too_large_for_this_machine_is_refused_before_keras_loads(script, flags, no_keras, tmp_path):
    result = run_script(script, *flags, "--out", str(tmp_path / "out"), env=no_keras)
    one_line_error(result, "parameters, about", "GiB with its gradients and optimizer state", "pass smaller --")
    assert not (tmp_path / "out").exists()


def test_a_data_file_claiming_huge_arrays_is_refused_before_reading(tmp_path):
    import zipfile

    import numpy as np

    from conftest import write_npz

    path = tmp_path / "huge.npz"
    write_npz(path, x_train=None)
    with zipfile.ZipFile(path, "a") as npz, npz.open("x_train.npy", "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False,
                                                 "shape": (10**9, 28, 28)})  # 730 GiB, as headers go
    result = run_script("mlp_mnist.py", "--data", str(path), "--out", str(tmp_path / "out"))
    one_line_error(result, "x_train in", "claims 730.2 GiB of shape (1000000000, 28, 28)", "use Keras's mnist.npz")


@POSIX
@pytest.mark.parametrize("moment, workers", [("pool-start", "2"), ("batch:mlp_16", "1")])
def test_a_stop_while_workers_start_or_a_trial_computes_is_one_line(moment, workers, tiny_npz, other_platform,
                                                                   tmp_path):
    argv = ["mlp_mnist.py", "--data", tiny_npz, "--epochs", "1", "--hidden", "8", "--study", "--study-hidden", "16",
            "--study-epochs", "2", "--l2", "1e-4", "1e-3", "--replicates", "2", "--workers", workers,
            "--out", str(tmp_path)]
    stopped = run_with_stop(argv, signal.SIGTERM, after=moment)
    # stderr is read to its end, the workers' too: nothing of theirs follows the stop line
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr
    assert stopped.stderr == ("mlp_mnist.py: stopped (SIGTERM); what had finished is saved, "
                              "rerun the same command to go on\n")
    # The pool's rerun as on macOS or Windows: workers not pinned to cores (no CPU affinity), no SIGHUP.
    result = run_script(*argv, env=other_platform if workers == "2" else None)
    assert result.returncode == 0 and result.stderr == ""
    assert "lab MLP: finished in an earlier session of this run" in result.stdout
    assert "Regularisation study: 4 trials, 0 already saved" in result.stdout
    study = json.loads((tmp_path / "results" / "mlp_l2_study.json").read_text())
    assert study["workers"] == int(workers) and study["trials_run"] == 4 and study["settings"]["backend"] == "jax"
    assert [row["replicates"] for row in study["rows"]] == [2, 2]
    trials = json.loads((tmp_path / "results" / "mlp_l2_study_trials.json").read_text())["trials"]
    assert sorted((t["l2"], t["replicate"]) for t in trials) == [(1e-4, 0), (1e-4, 1), (1e-3, 0), (1e-3, 1)]
    # Validated once, after the last of the 2 epochs.
    assert all(len(t["history"]["loss"]) == 2 and len(t["history"]["val_accuracy"]) == 1 for t in trials)


@POSIX
@pytest.mark.skipif(parallel.usable_cores() < 2, reason="needs 2 CPU cores")
def test_ctrl_c_a_closed_terminal_or_a_killed_worker_while_the_workers_start_is_one_line(tiny_npz, tmp_path):
    """A terminal's stop reaches the whole process group: the workers too, while they import the
    script and Keras, and multiprocessing's resource tracker. Only the command's line is said,
    no process is left, and the same command goes on (stopped again by the other signal first).
    Then the OOM killer takes a worker: the command ends at once with one line, where the pool
    used to wait forever for the lost training, its other worker ended too; and the same command
    trains every trial, each once."""
    import psutil

    argv = [sys.executable, os.path.join(ROOT, "mlp_mnist.py"), "--data", tiny_npz, "--epochs", "1", "--hidden", "8",
            "--study", "--study-hidden", "16", "--study-epochs", "1", "--l2", "1e-3", "--replicates", "2",
            "--workers", "2", "--out", str(tmp_path)]
    for signal_name in ("SIGINT", "SIGHUP", "SIGKILL"):
        process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env=user_env(), start_new_session=True, preexec_fn=as_in_a_terminal)
        try:
            for line in process.stdout:
                if "2 at a time" in line:  # the pool starts now; its workers take seconds to import Keras
                    if signal_name == "SIGKILL":  # to one worker, as the OOM killer sends it
                        deadline = time.monotonic() + 60
                        while len(workers := [p for p in psutil.Process(process.pid).children()
                                              if "spawn_main" in " ".join(p.cmdline())]) < 2:
                            assert time.monotonic() < deadline, "the pool's two workers did not start"
                            time.sleep(0.1)
                        workers[0].kill()
                    else:
                        time.sleep(0.5)
                        os.killpg(process.pid, getattr(signal, signal_name))
                    break
            stdout, stderr = process.communicate(timeout=120)
            assert (process.returncode, stderr) == ((2, KILLED_WORKER) if signal_name == "SIGKILL" else (
                128 + getattr(signal, signal_name), stop_line("mlp_mnist.py", signal_name))), stdout
        finally:
            left = session_processes(process.pid)
            for pid in left:
                os.kill(pid, signal.SIGKILL)
        assert left == []
    result = run_script(*argv[1:])
    assert (result.returncode, result.stderr) == (0, ""), result.stdout
    [store] = (tmp_path / "runs").glob("*/results/mlp_l2_study_trials.json")
    assert sorted((t["l2"], t["replicate"]) for t in json.loads(store.read_text())["trials"]) == [(1e-3, 0), (1e-3, 1)]


KILLED_WORKER = ("mlp_mnist.py: error: a worker process was killed (it may have run out of memory: --workers 1 "
                 "holds less); what had finished is saved, rerun the same command to go on\n")


def session_processes(session, within=10):
    """The processes of ``session`` still running after up to ``within`` seconds: one exiting may
    take a moment to end; one ended but not yet reaped has."""
    deadline = time.monotonic() + within
    while True:
        listed = subprocess.run(["ps", "-s", str(session), "-o", "pid=,stat="], capture_output=True, text=True).stdout
        left = [int(pid) for pid, state in (line.split() for line in listed.splitlines() if line.strip())
                if not state.startswith("Z")]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


@POSIX
def test_ctrl_c_while_tensorflow_traces_the_first_step_is_one_line(tiny_npz, tmp_path):
    argv = ["cnn_mnist.py", "--data", tiny_npz, *SMALL["cnn_mnist.py"], "--out", str(tmp_path)]
    stopped = run_with_stop(argv, signal.SIGINT, after="trace")
    assert stopped.returncode == 130, stopped.stderr
    assert stopped.stderr == ("cnn_mnist.py: stopped (SIGINT); what had finished is saved, "
                              "rerun the same command to go on\n")
    [folder] = (tmp_path / "runs").iterdir()
    assert json.loads((folder / "run.json").read_text())["status"] == "interrupted in lab CNN"


def test_a_reader_that_goes_away_ends_the_script_quietly(tiny_npz, tmp_path):
    """`python mlp_mnist.py | head -1`: once the pipe is closed, no error line and the shell's
    code for a closed pipe, as command-line tools end."""
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "mlp_mnist.py"), "--data", tiny_npz,
                                "--epochs", "1", "--out", str(tmp_path)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=user_env())
    assert process.stdout.readline()  # the first line, as `head -1` reads it
    process.stdout.close()
    assert process.wait(timeout=120) == 128 + signal.SIGPIPE
    assert process.stderr.read() == b""


def test_a_folder_where_a_result_goes_is_named_as_what_stands_in_the_way(tmp_path):
    from mnistlab import records
    from mnistlab.cli import LabError

    path = tmp_path / "mlp_mnist.json"
    path.mkdir()
    with pytest.raises(LabError, match=f"cannot write mlp_mnist.json in {tmp_path} .*; move aside what stands in "
                                       "the way .* or pass --out to another folder"):
        records.write_json(str(path), {"epochs": 3})


@pytest.mark.parametrize("error, hint", [
    (errno.ENOSPC, "free some space or pass --out to another folder"),
    (errno.EDQUOT, "free some space or pass --out to another folder"),
    (errno.EACCES, "make it writable or pass --out to a folder you can write to"),
    (errno.EROFS, "make it writable or pass --out to a folder you can write to"),
    (errno.ENOTDIR, "move aside what stands in the way"),
])
def test_each_failed_write_names_the_fix_for_its_cause(error, hint, tmp_path):
    from mnistlab import records
    from mnistlab.cli import LabError

    def fail(tmp):
        raise OSError(error, os.strerror(error))

    with pytest.raises(LabError, match=f"\\({os.strerror(error)}\\); {hint}"):
        records.write_atomic(str(tmp_path / "plot.png"), fail)


STOP_WHILE_LOADING = """
import builtins, os, runpy, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, whatever the runner ignores
real_import = builtins.__import__
def stopping_import(name, *args, **kwargs):
    if name == "matplotlib":
        os.kill(os.getpid(), signal.SIGINT)
    return real_import(name, *args, **kwargs)
builtins.__import__ = stopping_import
module, sys.argv = sys.argv[1], [sys.argv[1], *sys.argv[2:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


@POSIX
@pytest.mark.parametrize("module, prog", [("mnistlab.report", "python -m mnistlab.report"),
                                          ("mnistlab.runs", "python -m mnistlab.runs")])
def test_ctrl_c_while_the_report_or_the_runs_command_starts_is_one_line(module, prog, tmp_path):
    result = subprocess.run([sys.executable, "-c", STOP_WHILE_LOADING, module, "--out", str(tmp_path)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120, env=user_env())
    assert result.returncode == 130, result.stderr
    assert result.stderr == f"{prog}: stopped (SIGINT); what had finished is saved, rerun the same command to go on\n"


def stop_line(prog, signal_name):
    return f"{prog}: stopped ({signal_name}); what had finished is saved, rerun the same command to go on\n"


def test_a_stop_dropped_by_a_garbage_collector_callback_still_ends_the_command(capsys):
    """Python drops an exception raised in a garbage-collector callback (JAX's ``_xla_gc_callback``
    is one) after printing "Exception ignored in": a stop raised there still ends the command,
    and the work after it never runs."""
    import gc

    from mnistlab import cli

    went_on = []

    def send_a_stop(phase, info):
        if phase == "start" and not went_on:
            went_on.append(False)
            os.kill(os.getpid(), signal.SIGTERM)  # its handler runs here, inside the callback
            time.sleep(0.001)

    def main(argv):
        gc.callbacks.append(send_a_stop)
        try:
            gc.collect()
        finally:
            gc.callbacks.remove(send_a_stop)
        for _ in range(300):  # the run going on for up to 3 s
            time.sleep(0.01)
        went_on.append(True)
        return 0

    assert cli.run(main, [], prog="lab") == 128 + signal.SIGTERM
    assert went_on == [False]
    assert capsys.readouterr().err == stop_line("lab", "SIGTERM")


@pytest.mark.parametrize("then", ["goes on", "fails"])
def test_a_stop_that_a_library_swallows_still_ends_the_command(then, capsys):
    """A stop caught by a library's own ``except`` (inside an import, it leaves a module half
    made and a later import fails): the command still ends with the stop's line and code."""

    from mnistlab import cli

    def main(argv):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        except BaseException:
            pass
        if then == "fails":
            raise AttributeError("partially initialized module 'tensorflow' has no attribute 'type_spec'")
        return 0

    assert cli.run(main, [], prog="lab") == 128 + signal.SIGTERM
    assert capsys.readouterr().err == stop_line("lab", "SIGTERM")


def stops_at_many_instants(command, instants, cwd=ROOT, env=None):
    """Start ``command`` once per instant (seconds) and send it a stop then, cycling through the
    stop signals; each process is left to end by itself. Every one ends with exactly its stop's
    line and code, or, where the stop came after its end, as a normal run ends. (Before the
    command's first line, in the hundredths of a second Python takes to start, a stop is Python's
    own: the instants start later.)"""
    names = [name for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)]
    for i, instant in enumerate(instants):
        name = names[i % len(names)]
        process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True, preexec_fn=as_in_a_terminal, env=user_env(env))
        try:
            stdout, stderr = process.communicate(timeout=instant)
        except subprocess.TimeoutExpired:
            process.send_signal(getattr(signal, name))
            stdout, stderr = process.communicate(timeout=300)
        seen = (instant, name, process.returncode, stderr[-4000:], stdout[-2000:])  # all a rare failure shows
        if process.returncode == 0:  # it had ended before the stop
            assert stderr == "", seen
        else:
            assert (process.returncode, stderr) == (128 + getattr(signal, name), stop_line(command_name(command), name)), seen


def command_name(command):
    return f"python -m {command[2]}" if command[1] == "-m" else os.path.basename(command[1])


@POSIX
@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_a_stop_at_any_instant_of_a_run_ends_it_with_one_line_and_the_same_command_goes_on(backend, tiny_npz, tmp_path):
    """A run of the MLP and a small study, stopped at instants spread over its whole life, from
    the first import (JAX's garbage-collector callback, TensorFlow's imports) to its last file,
    each time the same command again: each ends with exactly its line, and (on JAX, where the
    stops reach past the imports) the last one finishes the run."""

    command = [sys.executable, os.path.join(ROOT, "mlp_mnist.py"), "--quick", "--data", tiny_npz, "--epochs", "2",
               "--hidden", "8", "--study", "--study-hidden", "16", "--study-epochs", "2", "--l2", "0.001",
               "--replicates", "2", "--workers", "1", "--out", str(tmp_path)]
    on_backend = {"KERAS_BACKEND": backend}
    env = user_env(on_backend)
    # while the libraries load (JAX's garbage-collector callback among them; TensorFlow's imports)
    instants = [0.4, 1.1, 1.9, 2.8] if backend == "jax" else [0.7, 2.2]
    if backend == "jax":  # the rest of a run's life is the same on both: spread over it, and past its end
        start = time.monotonic()
        first = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300, env=env)
        assert (first.returncode, first.stderr) == (0, ""), first.stdout[-2000:]
        whole = time.monotonic() - start
        instants += [whole * k / 3 + 0.1 * k for k in range(1, 4)]
    stops_at_many_instants(command, instants, env=on_backend)
    if backend == "jax":
        def newest_status():
            newest = max((tmp_path / "runs").iterdir(), key=lambda p: json.loads((p / "run.json").read_text())["started"])
            return json.loads((newest / "run.json").read_text())["status"]
        if newest_status() != "complete":  # the last stop came before the run's end: the same command again
            last = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300, env=env)
            assert (last.returncode, last.stderr) == (0, ""), last.stdout[-2000:]
        assert newest_status() == "complete"
        stops_at_many_instants([sys.executable, "-m", "mnistlab.runs", "--out", str(tmp_path)], [0.3, 0.5, 0.8, 1.2])


@POSIX
def test_a_stop_at_any_instant_of_the_report_is_one_line(tmp_path):
    for kind in ("results", "plots"):
        shutil.copytree(os.path.join(ROOT, kind), tmp_path / kind)
    stops_at_many_instants([sys.executable, "-m", "mnistlab.report", "--out", str(tmp_path)],
                           [0.3, 0.5, 0.9, 1.4, 2.0, 3.0])


@POSIX
def test_a_stop_while_a_finished_runs_figures_are_published_is_one_line(tiny_npz, tmp_path):
    argv = ["mlp_mnist.py", "--data", tiny_npz, "--epochs", "1", "--hidden", "8", "--out", str(tmp_path)]
    stopped = run_with_stop(argv, signal.SIGTERM, after=os.path.join(str(tmp_path), "plots", "mlp_mnist_loss.png"))
    assert stopped.returncode == 128 + signal.SIGTERM and stopped.stderr == stop_line("mlp_mnist.py", "SIGTERM")
    result = run_script(*argv)
    assert result.returncode == 0 and result.stderr == ""


@POSIX
def test_a_script_edited_after_a_stop_starts_a_new_run_and_the_runs_command_tells_them_apart(tiny_npz, tmp_path):
    """A student stops a run, adds a Dropout to build_mlp, and reruns the same command: the
    edited model is a new run, not the rest of the stopped one."""
    copy = tmp_path / "lab" / "mlp_mnist.py"
    copy.parent.mkdir()
    shutil.copy(os.path.join(ROOT, "mlp_mnist.py"), copy)
    out = tmp_path / "out"
    argv = [str(copy), "--data", tiny_npz, "--epochs", "3", "--hidden", "8", "--out", str(out)]
    assert run_with_stop(argv, signal.SIGTERM).returncode == 128 + signal.SIGTERM
    dense = 'layers.append(keras.layers.Dense(units, activation="relu", kernel_regularizer=regularizer))'
    copy.write_text(copy.read_text().replace(dense, dense + "\n        layers.append(keras.layers.Dropout(0.2))"))
    result = run_script(*argv, env={"PYTHONPATH": ROOT})
    assert result.returncode == 0 and result.stderr == ""
    stopped, edited = sorted((out / "runs").iterdir(), key=lambda p: p.name)
    assert (f"Not resuming run {stopped.name}: mlp_mnist.py has changed since it stopped (build_mlp); "
            "starting a new run\n") in result.stdout
    assert "Resuming" not in result.stdout
    assert json.loads((stopped / "run.json").read_text())["status"].startswith("interrupted")
    record = json.loads((edited / "results" / "mlp_mnist.json").read_text())
    assert len(record["history"]["loss"]) == 3 and "Dropout" in [layer["kind"] for layer in record["layers"]]
    listing = subprocess.run([sys.executable, "-m", "mnistlab.runs", "--out", str(out)], capture_output=True,
                             text=True, cwd=ROOT, timeout=60, env=user_env())
    assert listing.returncode == 0 and listing.stderr == ""
    assert listing.stdout.splitlines()[0].startswith(f"{edited.name}  [epochs 3, hidden 8, edited build_mlp]  complete")
    assert listing.stdout.splitlines()[1].startswith(f"{stopped.name}  [epochs 3, hidden 8]  interrupted")
    compared = subprocess.run([sys.executable, "-m", "mnistlab.runs", "compare", "--out", str(out), stopped.name,
                               edited.name], capture_output=True, text=True, cwd=ROOT, timeout=120,
                              env=user_env())
    assert compared.returncode == 0 and compared.stderr == ""
    assert f"| {edited.name} | epochs 3, hidden 8, edited build_mlp |" in compared.stdout
