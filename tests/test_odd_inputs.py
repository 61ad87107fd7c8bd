"""Legitimate but unusual inputs the scripts, the report and the runs command must take in their
stride: a diverged run, a test set without some digit, a data file of another kind, a run
killed without a word."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import make_digits, run_main
from mnistlab import data
from mnistlab.cli import LabError


def test_a_single_numpy_array_is_not_taken_for_mnist(tmp_path):
    path = tmp_path / "digits.npy"
    np.save(path, np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(LabError, match="holds one NumPy array, not an .npz archive; use Keras's mnist.npz"):
        data.load_mnist(str(path))


def test_a_digit_the_test_set_lacks_has_no_accuracy_and_the_report_says_so(tmp_path):
    import cnn_mnist
    from mnistlab.report import cnn
    from mnistlab.report.common import write

    counts = np.diag([5] * 10)
    counts[7, 7] = 0
    per_class = cnn_mnist.per_class_accuracy(counts)
    assert per_class[7] is None and per_class[:7] == [1.0] * 7
    record = {"layers": [{"layer": "Input", "kind": "InputLayer", "output_shape": [None, 28, 28, 1], "parameters": 0}],
              "parameters": 0, "test_accuracy": 0.9, "config": {"epochs": 1, "optimizer": "adam", "lr": 0.001,
                                                               "batch_size": 128}, "per_class_accuracy": per_class}
    text = "\n".join(write(cnn.SECTIONS[0], {"cnn_mnist": record, "mlp_mnist": {}, "cnn_improved": {}}, str(tmp_path)))
    assert "The test set holds no 7." in text


@pytest.mark.parametrize("standing", ["not a PNG", "a folder"])
def test_a_figure_that_is_not_a_png_is_named_in_the_report_not_linked(standing, tmp_path):
    from conftest import PNG_SIGNATURE
    from mnistlab.report.common import figure

    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "drawn.png").write_bytes(PNG_SIGNATURE + b"rest")
    if standing == "a folder":
        (plots / "broken.png").mkdir()
    else:
        (plots / "broken.png").write_text("half a figure")
    assert figure(str(tmp_path), "drawn.png", "Drawn.")[0] == "![Drawn.](plots/drawn.png)"
    assert figure(str(tmp_path), "never-drawn.png", "Never drawn.") == []
    (note, _) = figure(str(tmp_path), "broken.png", "Broken.")
    assert "plots/broken.png is not a readable PNG" in note and "rerun the command" in note and "](" not in note


def test_a_run_killed_without_a_word_is_listed_as_killed_and_resumed(tmp_path, capsys):
    from mnistlab import runs

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process id that no longer runs
    folder = tmp_path / "runs" / "mlp_mnist-20261130-120000"
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({
        "format": 1, "script": "mlp_mnist", "status": "running", "started": "2026-11-30T12:00:00", "pid": gone.pid,
        "changed": [], "records": [], "parts": {"lab MLP": {"status": "running", "wall_seconds": 3.0, "records": []}}}))
    code, out, err = run_main(runs.main, ["--out", str(tmp_path)], capsys)
    assert code == 0 and err == ""
    assert "killed (its process is gone; rerun its command to go on)" in out and "lab MLP killed (3 s)" in out


@pytest.mark.slow
def test_diverged_runs_on_a_test_set_without_a_digit_still_make_a_report(tmp_path, capsys):
    import cnn_mnist
    import denoise_autoencoder
    import mlp_mnist
    from mnistlab.report import __main__ as document

    (x_train, y_train), (x_test, y_test) = make_digits(600, 1), make_digits(200, 2)
    path = tmp_path / "no7.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test[y_test != 7], y_test=y_test[y_test != 7])
    for main, flags in ((mlp_mnist.main, ["--hidden", "8", "--epochs", "1"]), (cnn_mnist.main, ["--epochs", "1"]),
                        (denoise_autoencoder.main, ["--epochs", "1", "--levels", "0", "0.5", "--draws", "1",
                                                    "--classifier-epochs", "1"])):
        code, _, err = run_main(main, ["--data", str(path), "--lr", "1e30", "--save-model", "--out", str(tmp_path), *flags],
                                capsys)
        assert code == 0 and err == "", err
    assert document.main(["--out", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    assert report.count("**This run diverged**") == 5  # 2B, 2C, 4A, 4B, 4C
    assert "The test set holds no 7." in report


@pytest.fixture(scope="module")
def lab_records():
    """The committed records of a full lab run, to edit copies of."""
    import os

    from conftest import ROOT

    return {name: json.loads(open(os.path.join(ROOT, "results", f"{name}.json")).read())
            for name in ("mlp_mnist", "mlp_l2_study", "cnn_mnist", "denoise_autoencoder", "mlp_mnist_run")}


EDITS = {
    "a layer without its keys": ("mlp_mnist", lambda r: r["layers"][1].pop("parameters"), "layers"),
    "no classifier": ("denoise_autoencoder", lambda r: r["classifiers"].clear(), "classifiers"),
    "a classifier's curve of words": ("denoise_autoencoder", lambda r: r["classifiers"][0].update(accuracy_noisy=["x"]),
                                      "classifiers"),
    "a part without its wall time": ("mlp_mnist_run", lambda r: r["parts"]["lab MLP"].pop("wall_seconds"), "parts"),
    "a study row without its mean": ("mlp_l2_study", lambda r: r["rows"][0].pop("mean"), "rows"),
}


@pytest.mark.parametrize("case", EDITS)
def test_a_record_edited_inside_a_field_is_refused_by_name(case, lab_records, tmp_path, capsys):
    from mnistlab.report import __main__ as document

    name, edit, field = EDITS[case]
    (tmp_path / "results").mkdir()
    for other, record in lab_records.items():
        record = json.loads(json.dumps(record))
        if other == name:
            edit(record)
        (tmp_path / "results" / f"{other}.json").write_text(json.dumps(record))
    code, _, err = run_main(document.main, ["--out", str(tmp_path)], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert f"{name}.json holds something of an unexpected form ({field}; edited by hand?)" in err
    assert not (tmp_path / "REPORT.md").exists()


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_a_record_holding_a_number_json_has_not_is_refused_by_name(token, tmp_path, capsys):
    from mnistlab.report import __main__ as document

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "mlp_mnist.json").write_text('{"test_accuracy": %s}' % token)
    code, _, err = run_main(document.main, ["--out", str(tmp_path)], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "mlp_mnist.json is not valid JSON (ValueError: truncated or edited?)" in err


def test_a_history_without_a_metric_leaves_its_section_to_the_command_that_makes_it(lab_records, tmp_path, capsys):
    from mnistlab.report import __main__ as document

    (tmp_path / "results").mkdir()
    record = json.loads(json.dumps(lab_records["mlp_mnist"]))
    del record["history"]["val_accuracy"]
    (tmp_path / "results" / "mlp_mnist.json").write_text(json.dumps(record))
    assert run_main(document.main, ["--out", str(tmp_path)], capsys)[0] == 0
    text = (tmp_path / "REPORT.md").read_text()
    assert "## 2C. The MLP's accuracy per epoch\n\n> The handout" in text
    assert text.split("## 2C.")[1].split("## 2D.")[0].count("`python mlp_mnist.py` makes them") == 1


def test_a_folder_where_a_record_goes_is_named_as_such(tmp_path):
    from mnistlab import records

    (tmp_path / "mlp_mnist.json").mkdir()
    with pytest.raises(LabError, match="mlp_mnist.json is a folder where a record goes; move it aside, then rerun"):
        records.read(str(tmp_path / "mlp_mnist.json"))
