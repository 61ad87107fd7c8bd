"""Every run kept in its own folder, compared after each run, resumable; the runs command."""

import argparse
import hashlib
import json
import os
import sys

import numpy as np
import pytest

import mlp_mnist
from conftest import ROOT, assert_png, made_once, run_main, user_env
from mnistlab import lab, records, runs, training
from mnistlab.cli import LabError

FAST = ["--hidden", "8", "--batch-size", "64"]


def files_of(folder):
    """{relative path: sha256} of every file under ``folder``."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return found


def run_folders(out):
    return sorted(p for p in (out / "runs").iterdir())


@pytest.mark.slow
def test_two_runs_keep_their_own_files_and_are_compared(tiny_npz, tmp_path, capsys):
    base = ["--data", tiny_npz, "--epochs", "2", *FAST, "--out", str(tmp_path)]
    assert run_main(mlp_mnist.main, base, capsys)[0] == 0
    [first] = run_folders(tmp_path)
    before = files_of(first)
    assert {"plots/mlp_mnist_accuracy.png", "results/mlp_mnist.json", "run.json"} <= set(before)

    code, out, err = run_main(mlp_mnist.main, base + ["--lr", "0.05"], capsys)
    assert code == 0, err
    folders = run_folders(tmp_path)
    assert len(folders) == 2 and folders[0] == first
    assert files_of(first) == before  # the first run's files are untouched
    assert folders[1].name.startswith("mlp_mnist-") and folders[1].name.endswith("-epochs2-batch-size64-lr0.05-hidden8")

    # OUT/results shows the latest completed run, as REPORT.md reads it
    latest = json.loads((tmp_path / "results" / "mlp_mnist.json").read_text())
    assert latest["config"]["lr"] == 0.05
    table = (tmp_path / "results" / "mlp_mnist_runs.md").read_text()
    assert first.name in table and folders[1].name in table
    assert "| epochs 2, batch-size 64, lr 0.05, hidden 8 |" in table and "complete" in table
    assert_png(tmp_path / "plots" / "mlp_mnist_runs.png")
    assert "Compared with earlier runs" in out


@pytest.mark.slow
def test_study_runs_are_compared_per_factor_and_over_all_their_trials(tiny_npz, tmp_path, capsys):
    base = ["--data", tiny_npz, "--epochs", "1", *FAST, "--out", str(tmp_path), "--study", "--workers", "1",
            "--study-hidden", "8", "--study-epochs", "2", "--l2", "0.0001", "0.001", "--replicates", "2"]
    for extra in ([], ["--study-schedule", "cosine"]):
        code, _, err = run_main(mlp_mnist.main, base + extra, capsys)
        assert code == 0, err
    first, second = run_folders(tmp_path)
    table = (tmp_path / "results" / "mlp_l2_study_runs.md").read_text()
    assert first.name in table and second.name in table
    assert "| L2 0.0001 | L2 0.001 | all trials |" in table
    for folder in (first, second):
        study = json.loads((folder / "results" / "mlp_l2_study.json").read_text())
        accuracies = [a for row in study["rows"] for a in row["accuracies"]]
        assert len(accuracies) == 4 and all(len(row["accuracies"]) == 2 for row in study["rows"])
        pooled = np.array(accuracies)
        row = next(line for line in table.splitlines() if line.startswith(f"| {folder.name} |"))
        assert f"{100 * pooled.mean():.2f}% ± {100 * pooled.std(ddof=1):.2f}% (4)" in row
    assert "study-schedule cosine" in table.split(second.name)[1] and "cosine" not in table.split(second.name)[0]
    assert_png(tmp_path / "plots" / "mlp_l2_study_runs.png")


def test_run_folder_names_and_labels():
    import datetime

    when = datetime.datetime(2026, 11, 25, 17, 15, 2)
    assert runs.folder_name("mlp_mnist", ["lr 0.01"], when) == "mlp_mnist-20261125-171502-lr0.01"
    assert runs.folder_name("cnn_mnist", ["model improved", "l2 1e-06 0.001"], when) == \
        "cnn_mnist-20261125-171502-model-improved-l2_1e-06,0.001"
    assert runs.label([]) == "lab defaults" and runs.label(["lr 0.05", "quick"]) == "lr 0.05, quick"


@pytest.mark.parametrize("case", ["same", "edited", "not recorded", "unreadable", "its import edited",
                                  "its import not recorded"])
def test_a_stopped_run_goes_on_only_under_the_code_it_ran(case, tmp_path, capsys):
    """A stopped run resumes only when its code, its script's and that of the modules beside it
    that it imports, is known on both sides and the same: a run that did not record it (or a
    script that cannot be read now) may hide an edit."""
    args = argparse.Namespace(out=str(tmp_path), changed=[], epochs=3)
    ran = {"file": "denoise_autoencoder.py", "fingerprint": "a",
           "definitions": {"train_autoencoder": "b", "mlp_mnist.build_mlp": "c"}}
    recorded = {"not recorded": None,
                "its import not recorded": {**ran, "definitions": {"train_autoencoder": "b"}}}.get(case, ran)
    with pytest.raises(KeyboardInterrupt), runs.Run("denoise_autoencoder", args, [], recorded) as stopped:
        raise KeyboardInterrupt  # stopped before its first part
    now = {"edited": {**ran, "fingerprint": "d", "definitions": {"train_autoencoder": "e", "mlp_mnist.build_mlp": "c"}},
           "its import edited": {**ran, "fingerprint": "d",
                                 "definitions": {"train_autoencoder": "b", "mlp_mnist.build_mlp": "f"}},
           "unreadable": None}.get(case, ran)
    found = runs.Run("denoise_autoencoder", args, records.all_runs(str(tmp_path)), now)
    said, path = capsys.readouterr().out, stopped.root
    if case == "same":
        assert found.root == path and said == f"Resuming run {stopped.name} (interrupted)\n"
        return
    unknown = "so an edit since it stopped cannot be ruled out"
    why = {"edited": "denoise_autoencoder.py has changed since it stopped (train_autoencoder)",
           "its import edited": "mlp_mnist.py has changed since it stopped (mlp_mnist.build_mlp)",
           "not recorded": f"it did not record the code of denoise_autoencoder.py, {unknown}",
           "its import not recorded": f"it did not record the code of mlp_mnist.py, {unknown}",
           "unreadable": f"the code of denoise_autoencoder.py cannot be read, {unknown}"}[case]
    assert found.root != path and said == f"Not resuming run {os.path.basename(path)}: {why}; starting a new run\n"


def test_a_scripts_code_holds_the_modules_beside_it_that_it_imports(tmp_path, monkeypatch):
    """A model built by a function of another module beside the script (a lab script, or a
    student's own) is the script's code too; the package's modules are not."""
    import importlib.util

    (tmp_path / "helper.py").write_text("def layers():\n    return [8]\n")
    (tmp_path / "lab_script.py").write_text("import helper\nfrom mnistlab import records\n\n\n"
                                            "def build():\n    return helper.layers()\n")
    for name in ("helper", "lab_script"):
        spec = importlib.util.spec_from_file_location(name, tmp_path / f"{name}.py")
        monkeypatch.setitem(sys.modules, name, importlib.util.module_from_spec(spec))
        sys.modules[name].__file__ = str(tmp_path / f"{name}.py")
    before = records.fingerprint("lab_script")
    assert sorted(before["definitions"]) == ["build", "helper.layers", "helper.module-level statements",
                                             "module-level statements"]
    (tmp_path / "helper.py").write_text("def layers():\n    return [8, 8]\n")
    after = records.fingerprint("lab_script")
    assert after["fingerprint"] != before["fingerprint"] and records.edited(before, after) == ["helper.layers"]
    # A run recorded before the modules beside its script were: not an edit in the runs' labels.
    unrecorded = {**before, "definitions": {k: v for k, v in before["definitions"].items() if "." not in k}}
    assert records.edited(unrecorded, after) == []


def test_the_whole_lab_runs_a_finished_part_again_when_its_code_has_changed(tmp_path, monkeypatch, capfd):
    """The lab stopped after its first part; that part's script is edited: rerun, the lab runs it
    again and the parts after it, as it would any part it had not finished."""
    for name in ("first", "second"):
        (tmp_path / f"{name}.py").write_text("def build():\n    return [8]\n")
    monkeypatch.setattr(lab, "ROOT", str(tmp_path))
    outcome = {"second": 7}  # the second part fails: the lab stops after the first

    def commands(lab_flags, quick, out):
        return [(name, [sys.executable, "-c", f"import sys; print('{name} ran'); sys.exit({outcome.get(name, 0)})"])
                for name in (*lab_flags, "report")]
    monkeypatch.setattr(lab, "commands", commands)
    lab_flags, out = {"first": (), "second": ()}, str(tmp_path / "out")
    assert lab.main("lab", lab_flags, False, out) == 7
    assert capfd.readouterr().out == "== first\nfirst ran\n== second\nsecond ran\n"

    outcome.clear()
    (tmp_path / "first.py").write_text("def build():\n    return [8, 8]\n")
    assert lab.main("lab", lab_flags, False, out) == 0
    assert capfd.readouterr().out == (
        "first: finished in the lab stopped earlier, but first.py has changed since it stopped (build): it runs "
        "again, and the parts after it\n== first\nfirst ran\n== second\nsecond ran\n== report\nreport ran\n")
    assert not os.path.exists(os.path.join(out, "runs", "lab.json"))  # the lab is done

    outcome["report"] = 3  # unedited, a finished part is not run again
    assert lab.main("lab", lab_flags, False, out) == 3
    outcome.clear()
    capfd.readouterr()
    assert lab.main("lab", lab_flags, False, out) == 0
    assert capfd.readouterr().out == ("first: finished in the lab stopped earlier; not run again\n"
                                      "second: finished in the lab stopped earlier; not run again\n"
                                      "== report\nreport ran\n")

    os.makedirs(os.path.join(out, "runs"), exist_ok=True)
    with open(os.path.join(out, "runs", "lab.json"), "w") as f:
        json.dump({"done": "first", "code": {}}, f)  # edited by hand
    with pytest.raises(LabError, match=r"lab.json holds something of an unexpected form \(done; edited by hand"):
        lab.main("lab", lab_flags, False, out)


class StopAfter(training.BackupAndRestore):
    """BackupAndRestore that, once epoch ``stop`` is backed up, stops the run like Ctrl-C."""

    stop = 1

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if epoch == self.stop:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_interrupted_run_goes_on_from_its_last_finished_epoch(tiny_npz, tmp_path, capsys, monkeypatch):
    argv = ["--data", tiny_npz, "--epochs", "4", *FAST, "--out", str(tmp_path)]
    monkeypatch.setattr(training, "BackupAndRestore", StopAfter)
    code, _, err = run_main(mlp_mnist.main, argv, capsys)
    assert code == 130 and "rerun the same command to go on" in err
    [folder] = run_folders(tmp_path)
    meta = json.loads((folder / "run.json").read_text())
    assert meta["status"] == "interrupted in lab MLP at epoch 3"
    assert not (tmp_path / "results" / "mlp_mnist.json").exists()  # nothing published from an unfinished run

    monkeypatch.undo()
    code, out, err = run_main(mlp_mnist.main, argv, capsys)
    assert code == 0, err
    assert f"Resuming run {folder.name} (interrupted in lab MLP at epoch 3)" in out
    assert "after epoch 2 of 4" in out and "Epoch 3/4" in out and "Epoch 1/4" not in out
    assert run_folders(tmp_path) == [folder]
    record = json.loads((folder / "results" / "mlp_mnist.json").read_text())
    assert all(len(values) == 4 for values in record["history"].values())  # no gap, no repeated epoch
    assert not (folder / "state").exists()

    # every epoch, before the stop and after it, is that of an uninterrupted run with the same seed
    assert run_main(mlp_mnist.main, argv + ["--out", str(tmp_path / "whole")], capsys)[0] == 0
    whole = json.loads((tmp_path / "whole" / "results" / "mlp_mnist.json").read_text())
    assert whole["history"] == record["history"]


@pytest.mark.slow
def test_a_completed_run_rerun_is_a_new_run_with_the_same_numbers(tiny_npz, tmp_path, capsys):
    argv = ["--data", tiny_npz, "--epochs", "2", *FAST, "--out", str(tmp_path)]
    assert run_main(mlp_mnist.main, argv, capsys)[0] == 0
    assert run_main(mlp_mnist.main, argv, capsys)[0] == 0
    first, second = run_folders(tmp_path)
    histories = [json.loads((f / "results" / "mlp_mnist.json").read_text())["history"] for f in (first, second)]
    assert histories[0] == histories[1]


@pytest.fixture(scope="module")
def two_runs(tiny_npz, tmp_path_factory):
    import subprocess
    import sys

    def make(out):
        for extra in ([], ["--lr", "0.05"]):
            subprocess.run([sys.executable, os.path.join(ROOT, "mlp_mnist.py"), "--data", tiny_npz, "--epochs", "1",
                            *FAST, "--out", str(out), *extra], check=True, capture_output=True, cwd=ROOT,
                           env=user_env())
    out = made_once(tmp_path_factory, "two_runs", make)
    return out, [p.name for p in run_folders(out)]


def runs_command(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "mnistlab.runs", *args], capture_output=True, text=True, cwd=ROOT,
                          env=user_env())


@pytest.mark.slow
def test_runs_lists_newest_first(two_runs):
    out, names = two_runs
    result = runs_command("--out", str(out))
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == names[::-1]
    assert all("complete" in line and "final val accuracy" in line for line in lines)


@pytest.mark.slow
def test_runs_compare_by_unique_prefix(two_runs):
    out, names = two_runs
    prefix = names[1][:-3]  # a unique beginning of the second run's name
    result = runs_command("compare", "--out", str(out), names[0], prefix)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert names[0] in result.stdout and names[1] in result.stdout and "lr 0.05" in result.stdout
    assert_png(out / "plots" / "runs_compare.png")
    assert names[1] in (out / "results" / "runs_compare.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("case", ["unknown", "ambiguous", "empty", "no name"])
def test_runs_command_errors_are_one_line(case, two_runs, tmp_path):
    out, names = two_runs
    args, message = {
        "unknown": (["compare", "--out", str(out), "nosuchrun"], "no run named 'nosuchrun'"),
        "ambiguous": (["compare", "--out", str(out), "mlp_mnist-"], "'mlp_mnist-' matches 2 runs"),
        "empty": (["--out", str(tmp_path)], f"no runs in {tmp_path}/runs"),
        "no name": (["compare", "--out", str(out)], "compare needs at least one RUN"),
    }[case]
    result = runs_command(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("python -m mnistlab.runs: error: ")
    assert message in result.stderr and "Traceback" not in result.stderr
