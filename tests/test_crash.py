"""A crash (SIGKILL, the OOM killer, a power cut) at any instant loses nothing: each file lands
whole or not at all, and the same command goes on, training nothing it had finished.

The crash points are the flushes of ``records.write_atomic``, in every process started with
``CRASH_SITE`` on its PYTHONPATH: each write flushes its temporary file before the rename (an odd
flush) and the folder after it (an even one). ``MNISTLAB_CRASH`` kills the process with SIGKILL
at the first flush whose path it matches (a regular expression), ``MNISTLAB_CRASH_AT`` at the
n-th flush, in the processes whose command line holds ``MNISTLAB_CRASH_IN``. ``make crashtest``
crashes the quick scripts and the quick lab at every point in turn.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT, assert_png, strict_json, user_env
from mnistlab import lab, records

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
EVERY_POINT = pytest.mark.skipif(not os.environ.get("MNISTLAB_CRASHTEST"),
                                 reason="every crash point in turn: make crashtest (docs/bad-input.md)")

CRASH_SITE = """
import os, re, signal, sys
sys.path.insert(0, os.environ["MNISTLAB_ROOT"])
from mnistlab import records
flushes, flush = [], records.to_disk
def to_disk(path, **folder):
    flushes.append(path)
    pattern, at = os.environ.get("MNISTLAB_CRASH"), int(os.environ.get("MNISTLAB_CRASH_AT", 0))
    here = os.environ.get("MNISTLAB_CRASH_IN", "") in " ".join(sys.argv)
    if here and (len(flushes) == at or (pattern and re.search(pattern, str(path)))):
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("MNISTLAB_FLUSHES"):
        with open(os.environ["MNISTLAB_FLUSHES"], "a") as f:
            f.write(f"{path}\\n")
    flush(path, **folder)
records.to_disk = to_disk
"""


@pytest.fixture(scope="module")
def crash_site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crash_site")
    (folder / "sitecustomize.py").write_text(CRASH_SITE)
    return {"PYTHONPATH": str(folder), "MNISTLAB_ROOT": ROOT}


def run(command, site, **crash):
    """``command`` (a script and its flags, or ``-m`` and a module) in a subprocess, crashed where
    ``crash`` says (MNISTLAB_CRASH=..., MNISTLAB_CRASH_AT=...; none: it runs to its end)."""
    argv = command if command[0] == "-m" else [os.path.join(ROOT, command[0]), *command[1:]]
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=ROOT, timeout=900,
                          env=user_env({**site, **{f"MNISTLAB_{key.upper()}": str(value) for key, value in crash.items()}}))


def finished_parts(out):
    """{run folder: the parts its run.json calls complete}, and its status, of each run not complete."""
    parts, statuses = {}, set()
    for path in (out / "runs").glob("*/run.json"):
        meta = json.loads(path.read_text())
        if meta["status"] != "complete":  # complete (and published): the same command makes a new run
            parts[path.parent.name] = [name for name, part in meta["parts"].items() if part["status"] == "complete"]
            statuses.add(meta["status"])
    return parts, statuses


def assert_whole(out):
    """Every file of ``out`` whole: JSON that parses, PNGs that decode, .keras archives that read, no
    temporary file where the published results are; every record complete with the epochs asked."""
    for kind in ("results", "plots"):
        assert not [p.name for p in (out / kind).iterdir() if records.TEMPORARY.search(p.name)]
    for path in out.rglob("*"):
        if records.TEMPORARY.search(path.name):
            continue  # left in a run's own folder by the crash: never read, never published
        if path.suffix == ".json":
            strict_json(path)
        elif path.suffix == ".png":
            assert_png(path)
        elif path.suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                assert archive.testzip() is None
    for path in (out / "results").glob("*.json"):
        record = json.loads(path.read_text())
        if "history" in record and "config" in record:
            assert record["status"] == "complete", path
            assert len(record["history"]["loss"]) == record["config"]["epochs"], path
    listing = run(["-m", "mnistlab.runs", "--out", str(out)], {})
    assert listing.returncode == 0 and listing.stderr == ""
    assert all("  complete  " in line for line in listing.stdout.splitlines()), listing.stdout


def crash_then_go_on(command, site, out, killed=(-signal.SIGKILL, ""), part=None, **crash):
    """Crash ``command`` as ``crash`` says (its exit code and stderr then ``killed``), rerun it, and
    check that the rerun trained nothing the crashed one had finished (in the lab: in its ``part``)
    and left ``out`` whole. Returns the crashed run (None if it never got to the crash point) and
    the rerun's CompletedProcess."""
    crashed = run(command, site, **crash)
    if crashed.returncode == 0:
        return None, crashed
    assert (crashed.returncode, crashed.stderr) == killed, crashed.stderr
    parts, statuses = finished_parts(out)
    again = run(command, site)
    assert again.returncode == 0 and again.stderr == "", again.stderr
    said = again.stdout.partition(f"== {part}\n")[2].partition("\n== ")[0] if part else again.stdout
    if records.UNPUBLISHED in statuses:
        assert "finished earlier; publishing it, nothing trained again\n" in said
        assert "Epoch" not in said and "Resuming" not in said
    else:
        for name in (name for done in parts.values() for name in done):
            assert f"{name}: finished in an earlier session of this run" in said, said
    assert_whole(out)
    return crashed, again


@pytest.mark.slow
def test_crashes_in_training_and_in_publishing_lose_nothing_and_train_nothing_twice(crash_site, tiny_npz, tmp_path):
    """The same command crashed and rerun three times in one folder (each time a new run, the one
    before being complete): while an epoch's backup is written, and twice while the finished run
    is published, before a rename (a temporary file in OUT/results) and after one."""
    out = tmp_path / "out"
    command = ["mlp_mnist.py", "--data", tiny_npz, "--epochs", "2", "--hidden", "8", "--out", str(out)]
    published = re.escape(str(out))
    reruns = []
    for where in (r"backup/mlp_mnist/epoch-2\.tmp-\d+\.weights\.h5$",
                  published + r"/results/mlp_mnist\.tmp-\d+\.json$",
                  published + r"/plots$"):
        crashed, again = crash_then_go_on(command, crash_site, out, crash=where)
        assert crashed is not None, where
        reruns.append(again.stdout)
    assert "lab MLP: going on where it stopped" in reruns[0] and "after epoch 1 of 2" in reruns[0]
    assert len(list((out / "runs").iterdir())) == 3


def test_a_temporary_file_of_a_dead_write_is_removed_and_one_being_written_is_not(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    names = [f"mlp_mnist.tmp-{dead.pid}.json", f"cnn_mnist_loss.tmp-{os.getpid()}.png", "mlp_mnist.json"]
    for name in names:
        (tmp_path / name).write_text("{}")
    records.remove_temporaries(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[1:])


@pytest.mark.parametrize("os_name", ["posix", "nt"])
def test_a_file_is_on_the_disk_before_its_rename_and_its_folder_after(os_name, monkeypatch, tmp_path):
    """Windows cannot sync a folder: there only the file is flushed."""
    events, replace = [], os.replace
    monkeypatch.setattr(os, "name", os_name)
    monkeypatch.setattr(os, "fsync", lambda fd: events.append(("fsync", os.fstat(fd).st_ino)))
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", str(b))), replace(a, b)))
    target = tmp_path / "record.json"
    records.write_json(str(target), {"a": 1})
    assert events[:2] == [("fsync", target.stat().st_ino), ("replace", str(target))]  # the file, then its name
    assert events[2:] == ([("fsync", tmp_path.stat().st_ino)] if os_name == "posix" else [])
    assert json.loads(target.read_text()) == {"a": 1}


@EVERY_POINT
@pytest.mark.parametrize("script", list(lab.LAB_FLAGS))
def test_every_crash_point_of_a_quick_script(script, crash_site, tiny_npz, tmp_path):
    """Each flush of the quick script in turn, a fresh output folder each time."""
    count = tmp_path / "flushes.txt"
    command = [f"{script}.py", "--quick", "--data", tiny_npz, *lab.LAB_FLAGS[script]]
    assert run([*command, "--out", str(tmp_path / "count")], crash_site, flushes=count).returncode == 0
    points = len(count.read_text().splitlines())
    for at in range(1, points + 1):
        out = tmp_path / f"crash-{at}"
        crashed, _ = crash_then_go_on([*command, "--out", str(out)], crash_site, out, crash_at=at)
        assert crashed is not None, at


@pytest.fixture(scope="module")
def quick_lab(crash_site, tiny_npz, tmp_path_factory):
    """A finished quick lab's folder."""
    out = tmp_path_factory.mktemp("quick_lab")
    finished = run(["-m", "mnistlab.lab", "--quick", "--out", str(out)], {**crash_site, "MNIST_NPZ": tiny_npz})
    assert finished.returncode == 0
    return out


@EVERY_POINT
@pytest.mark.parametrize("process", ["mnistlab/lab.py", *(f"{script}.py" for script in lab.LAB_FLAGS),
                                     "report/__main__.py"])
def test_every_crash_point_of_the_quick_lab(process, crash_site, tiny_npz, quick_lab, tmp_path):
    """The lab's own writes (its progress), each script part's and the report's, each in turn: a
    part killed ends the lab in one line, exit 128 + 9, and the same command goes on. A part's
    points each start from a finished quick lab whose progress names every other part done, so
    that only that part runs, as in a lab stopped in it."""
    env = {**crash_site, "MNIST_NPZ": tiny_npz}
    part = "report" if process.startswith("report") else os.path.basename(process)[:-3]
    killed = ((-signal.SIGKILL, "") if part == "lab" else  # the lab itself: as a shell shows it
              (128 + signal.SIGKILL, f"python -m mnistlab.lab: {part} was killed (SIGKILL; it may have run out of "
                                     "memory); what had finished is saved, rerun the same command to go on\n"))
    for at in range(1, 1000):
        out = tmp_path / f"crash-{at}"
        if part != "lab":
            shutil.copytree(quick_lab, out, symlinks=True)
            records.write_json(str(out / "runs" / "lab.json"), {
                "done": [name for name, _ in lab.commands(lab.LAB_FLAGS, True, str(out)) if name != part],
                "code": {name: records.of_file(os.path.join(ROOT, f"{name}.py")) for name in lab.LAB_FLAGS}})
        crashed, _ = crash_then_go_on(["-m", "mnistlab.lab", "--quick", "--out", str(out)], env, out, killed,
                                      part if part != "lab" else None, crash_at=at, crash_in=process)
        if crashed is None:
            assert at > 1
            return


def test_a_lab_part_killed_is_one_line_and_the_same_command_runs_it_again(monkeypatch, tmp_path, capsys):
    killed = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
    monkeypatch.setattr(lab, "commands", lambda lab_flags, quick, out: [("mlp_mnist", killed)])
    assert lab.main("python -m mnistlab.lab", {"mlp_mnist": ()}, True, str(tmp_path)) == 128 + signal.SIGKILL
    assert capsys.readouterr().err == ("python -m mnistlab.lab: mlp_mnist was killed (SIGKILL; it may have run out of "
                                       "memory); what had finished is saved, rerun the same command to go on\n")
    assert not (tmp_path / "runs" / "lab.json").exists()  # not done: the same command runs it again


@pytest.mark.slow
@pytest.mark.parametrize("case", ["its id reused", "still running", "unpublished"])
def test_a_dead_run_is_known_dead_even_under_a_reused_id_and_a_live_one_is_named(case, tmp_path, capsys):
    """A run's process is its id and start time: a run killed without a word, whose id another
    process now has (after a restart, in a container), is resumed; one that runs still is named
    in one line and not touched; a run finished but for its publishing is published."""
    import argparse

    import psutil

    from mnistlab import runs

    args = argparse.Namespace(out=str(tmp_path), changed=[], epochs=3)
    code = {"file": "mlp_mnist.py", "fingerprint": "a", "definitions": {"build_mlp": "b"}}
    with pytest.raises(KeyboardInterrupt), runs.Run("mlp_mnist", args, [], code) as earlier:
        raise KeyboardInterrupt  # stopped: then made, on disk, the run of each case
    started = psutil.Process().create_time()
    meta = json.loads((tmp_path / "runs" / earlier.name / "run.json").read_text())
    meta.update({"its id reused": dict(status="running", pid=os.getpid(), pid_started=started - 3600),
                 "still running": dict(status="running", pid=os.getpid(), pid_started=started),
                 "unpublished": dict(status=records.UNPUBLISHED, pid=None, pid_started=None)}[case])
    (tmp_path / "runs" / earlier.name / "run.json").write_text(json.dumps(meta))
    capsys.readouterr()
    listing = run(["-m", "mnistlab.runs", "--out", str(tmp_path)], {})
    status = {"its id reused": records.KILLED, "still running": "running", "unpublished": records.UNPUBLISHED}[case]
    assert listing.returncode == 0 and f"]  {status}  " in listing.stdout, listing.stdout
    found = runs.Run("mlp_mnist", args, records.all_runs(str(tmp_path)), code)
    said = capsys.readouterr().out
    if case == "still running":
        assert found.root != earlier.root
        assert said == f"Run {earlier.name} of these settings still runs (process {os.getpid()}); not resuming it\n"
    elif case == "unpublished":
        assert found.root == earlier.root and found.finished
        assert said == f"Run {earlier.name} finished earlier; publishing it, nothing trained again\n"
    else:
        assert found.root == earlier.root and said == f"Resuming run {earlier.name} ({records.KILLED})\n"
