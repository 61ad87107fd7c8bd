"""The generated lab report: a section per question, each answered from the folder's records, and
honest about runs that are not the lab's."""

import json
import re

import pytest

from conftest import command, made_once, run_main
from mnistlab import cli, lab
from mnistlab.report import autoencoder as question_4
from mnistlab.report import __main__ as report
from mnistlab.report.common import write

OTHER_SIZES = {"mlp_mnist": ["--hidden", "48", "24", "--study-hidden", "40", "20"],
               "denoise_autoencoder": ["--hidden", "100", "--latent", "12"]}
SECTIONS = ["1. Preprocessing", "2A.", "2B.", "2C.", "2D.", "3A.", "3B.", "4A.", "4B.", "4C.", "4D."]


@pytest.fixture(scope="module")
def quick_folder(tiny_npz, tmp_path_factory):
    """What `make quick` makes, on the tests' tiny data: every script's quick run (a study of two
    factors), then REPORT.md; the dense models with other sizes than the lab's, which the report
    must name."""
    import cnn_mnist
    import denoise_autoencoder
    import mlp_mnist

    def make(out):
        for main, extra in ((mlp_mnist.main, ["--save-model", "--l2", "1e-4", "1e-3", *OTHER_SIZES["mlp_mnist"]]),
                            (cnn_mnist.main, ["--save-model"]),
                            (denoise_autoencoder.main, ["--per-level", "--fixed-noise", "--levels", "0", "0.5", "1",
                                                        *OTHER_SIZES["denoise_autoencoder"]])):
            assert cli.run(command(main), ["--data", tiny_npz, "--quick", "--out", str(out), *extra]) == 0
        assert report.main(["--out", str(out)]) == 0
    return made_once(tmp_path_factory, "quick", make)


def record(folder, name):
    return json.loads((folder / "results" / f"{name}.json").read_text())


def section(text, number):
    """The text of section ``number`` ("2D"), up to the next section."""
    return re.split(r"\n## ", text.split(f"\n## {number}. ")[1])[0]


@pytest.mark.slow
def test_the_report_answers_every_question_in_the_handouts_order(quick_folder):
    text = (quick_folder / "REPORT.md").read_text()
    headings = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert [h for h in headings if h != "Wall time"] == [next(h for h in headings if h.startswith(s)) for s in SECTIONS]
    for number in ("1", "2A", "2B", "2C", "2D", "3A", "3B", "4A", "4B", "4C", "4D"):
        body = section(text, number)
        assert body.count("> The handout: \"") == 1  # the question, quoted briefly
        prose = [line for line in body.splitlines()
                 if line and line[0] not in "|>!$" and not (line.startswith("*") and not line.startswith("**"))]
        assert sum(len(line) for line in prose) > 200, number  # answered in sentences, not only a figure
    assert "Not in this folder's records yet" not in text


@pytest.mark.slow
def test_its_numbers_are_the_records_and_say_they_come_from_a_quick_run(quick_folder):
    text = (quick_folder / "REPORT.md").read_text()
    assert "**A quick run.**" in text and "do not answer the lab" in text
    mlp, cnn, study = (record(quick_folder, name) for name in ("mlp_mnist", "cnn_mnist", "mlp_l2_study"))
    assert f"{mlp['parameters']:,} parameters in total" in section(text, "2A")
    assert f"to {mlp['history']['loss'][-1]:.4f} in the last" in section(text, "2B")
    backend = cnn["environment"]["backend"]
    off_its_backend = "" if backend == "tensorflow" else f"; backend {backend}"
    assert (f"The lab CNN *(quick subset{off_its_backend})* reached **{100 * cnn['test_accuracy']:.2f}%**"
            in section(text, "3A"))
    best = max((row for row in study["rows"]), key=lambda row: row["mean"])
    gap = section(text, "2D")
    assert f"L2 {best['l2']:g}, averaged {100 * best['mean']:.2f}% ± {100 * best['std']:.2f}%" in gap
    digits = round(abs(lab.HINTON - best["mean"]) * mlp["examples"]["test"])
    assert f"that is {digits} of the {mlp['examples']['test']:,} test digits" in gap
    assert "quick subset" in gap.split("How close to Hinton")[0]  # beside the numbers set against the references
    assert "28×28 → 24×24 → 12×12 → 8×8 → 4×4 pixels" in section(text, "3A")  # this run's feature-map sizes
    for name in ("mlp_l2_study.png", "cnn_mnist_feature_maps.png", "denoise_accuracy.png", "generate_random.png"):
        assert f"(plots/{name})" in text
    # each part's wall time, from its run.json
    assert (f"| `mlp_mnist.py`: L2 study *(flags: hidden 48 24, study-hidden 40 20, l2 0.0001 0.001)* | "
            f"{study['settings']['backend']} |") in text


@pytest.mark.slow
def test_the_sizes_and_parameters_it_names_are_those_the_runs_had(quick_folder):
    text = (quick_folder / "REPORT.md").read_text()
    assert "2 hidden `Dense` layers of 48 and 24 neurons" in section(text, "2A")
    assert "784×48 + 48 = 37,680, 48×24 + 24 = 1,176, 24×10 + 10 = 250, 39,106 parameters" in section(text, "2A")
    assert "## 2D. The 40-20 MLP with L2 weight decay" in text and "of a 40-20 MLP" in section(text, "2D")
    assert "through 100 units into a code of 12 numbers" in section(text, "4A")
    assert "| encoder: Dense 12, relu | 12 | 1,212 |" in section(text, "4A")
    for default in ("64 and 64", "55,050", "500-300", "128 units", "code of 96"):
        assert default not in section(text, "2A") + section(text, "2D") + section(text, "4A"), default


def curves(levels, noisy, denoised, std=0.001):
    return {"name": "lab CNN", "accuracy_clean": 0.99, "accuracy_noisy": noisy, "accuracy_noisy_std": [std] * len(levels),
            "accuracy_denoised": denoised, "accuracy_denoised_std": [std] * len(levels)}


def test_4b_finds_where_digits_get_hard_to_read_and_where_denoising_stops_helping(tmp_path):
    levels = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    dae = {"config": {"changed": []}, "noise_levels": levels, "draws": 3, "study_mode": "one autoencoder",
           "reconstruction": [{"noise_level": 0.0, "bce_noisy": 0.05, "bce_denoised": 0.1, "psnr_noisy_db": None,
                               "psnr_denoised_db": 19.0}],
           "classifiers": [curves(levels, [0.99, 0.93, 0.60, 0.30, 0.15, 0.10], [0.985, 0.97, 0.92, 0.80, 0.104, 0.10])]}
    records = {"denoise_autoencoder": dae}
    text = "\n".join(write(question_4.NOISE_LEVELS, records, str(tmp_path)))
    assert "falls below 90%: **noise 0.4**" in text  # 0.93 at 0.2 is still readable
    assert "stay readable (at least 90%) up to **noise 0.4**" in text
    assert "helps from noise 0.2 and **stops helping at noise 0.8**" in text  # +0.4 points is not clearly above
    table = "\n".join(write(question_4.ACCURACY, records, str(tmp_path)))
    assert "| 0.6 | 30.00% ± 0.10 | **80.00% ± 0.10** |" in table and "| 1 | 10.00% ± 0.10 | 10.00% ± 0.10 |" in table
    assert "helps at noise 0.2, 0.4, 0.6, most at 0.6 (+50.00 points)" in table

    # with a classifier trained on noisy digits, that one judges, the clean one is set beside it
    dae["reader"] = {"name": "lab MLP trained on noisy digits of every level", "accuracy_clean": 0.97,
                     "accuracy_noisy": [0.97, 0.96, 0.95, 0.91, 0.70, 0.10], "accuracy_noisy_std": [0.001] * 6}
    text = "\n".join(write(question_4.NOISE_LEVELS, records, str(tmp_path)))
    assert "falls below 90%: **noise 0.8** in this run (70.00%)" in text
    assert "clean digits only, measures something else" in text and "below 90% from **noise 0.4** (60.00%)" in text
    assert "| 0.6 | 91.00% ± 0.10 | 30.00% ± 0.10 |" in text


def test_flags_that_differ_are_named_beside_the_numbers_and_missing_parts_name_their_command(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "mlp_mnist.json").write_text(json.dumps({
        "config": {"changed": ["lr 0.05", "save-model"], "quick": False}, "test_accuracy": 0.97, "test_loss": 0.1,
        "history": {"loss": [0.5, 0.1], "accuracy": [0.9, 0.97], "val_accuracy": [0.9, 0.97]},
        "environment": {"backend": "jax", "cpu": "Test CPU", "cores": 2, "python": "3.11", "tensorflow": "2",
                        "keras": "3", "jax": "0.1"}}))
    assert report.main(["--out", str(tmp_path)]) == 0
    text = (tmp_path / "REPORT.md").read_text()
    assert "Settings that differ from the lab's**: `mlp_mnist` flags: lr 0.05" in text
    assert "A quick run" not in text
    assert "*(flags: lr 0.05)*" in section(text, "2C")  # save-model is how make lab runs it: not named
    assert "`python mlp_mnist.py --study` makes them" in section(text, "2D")
    assert "`python cnn_mnist.py --save-model` makes them" in section(text, "3A")
    assert "`python denoise_autoencoder.py` makes them" in section(text, "4A")


def test_the_hinton_experiment_is_summarised_from_its_records_when_present(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "mlp_l2_study.json").write_text(json.dumps({
        "settings": {"hidden": [500, 300], "l2_layers": "all", "epochs": 40, "lr": 0.1, "batch_size": 128},
        "rows": [{"l2": 1e-6, "replicates": 3, "mean": 0.981, "std": 0.001, "best": 0.982,
                  "accuracies": [0.98, 0.981, 0.982]}]}))
    summary = tmp_path / "experiments" / "hinton" / "results" / "mlp_l2_study_runs.json"
    summary.parent.mkdir(parents=True)
    arm = lambda name, flag, mean, std, pooled, pooled_std: {
        "run": name, "changed": ["study", flag], "status": "complete", "wall_seconds": 100.0,
        "factors": [{"l2": 0.00025, "mean": mean, "std": std}],
        "all_trials": {"mean": pooled, "std": pooled_std, "trials": 6}}
    summary.write_text(json.dumps({"workers": 2, "machine": "Test CPU, 2 cores", "runs": [
        arm("mlp_mnist-1", "study-epochs 100", 0.9825, 0.0013, 0.9818, 0.0021),
        arm("mlp_mnist-2", "study-schedule cosine", 0.9836, 0.0007, 0.9834, 0.0005)]}))
    assert report.main(["--out", str(tmp_path)]) == 0
    text = section((tmp_path / "REPORT.md").read_text(), "2D")
    assert "2 pre-declared arms" in text and "*study-schedule cosine*, pooled 98.34% ± 0.05% over 6 trials" in text
    assert "0.13 points short of 98.47%; no arm reached it." in text
    assert "| mlp_mnist-1 | study, study-epochs 100 | 98.25% ± 0.13% | 98.18% ± 0.21% (6) | 100 s | complete |" in text


def test_a_folder_without_results_is_a_one_line_error(tmp_path, capsys):
    code, _, err = run_main(report.main, ["--out", str(tmp_path)], capsys)
    assert code == 2 and err.count("\n") == 1 and "run the lab first (make lab)" in err


def test_a_part_run_beside_another_is_named_so_and_counted_once_in_the_total():
    from mnistlab.report.common import wall_times

    def part(seconds, **within):
        return {"status": "complete", "wall_seconds": seconds, "records": [], **within}
    runs = {"mlp_mnist": {"script": "mlp_mnist", "records": ["mlp_mnist"], "parts": {"lab MLP": part(6.0)}},
            "denoise_autoencoder": {"script": "denoise_autoencoder", "records": ["denoise_autoencoder"], "parts": {
                "per-level autoencoders": part(120.0), "autoencoder": part(45.0, within="per-level autoencoders"),
                "accuracy study": part(20.0)}}}
    names = [name for facts in lab.SCRIPTS.values() for name in facts["records"]]
    records = {"runs": {name: runs.get(name, {}) for name in names},
               **{name: {"environment": {"backend": "jax"}} for name in names}}
    text = "\n".join(wall_times(records))
    assert "| `denoise_autoencoder.py`: autoencoder (beside the per-level autoencoders, within their time) | jax | 45 |" in text
    assert "| **the lab's parts** |  | **146** |" in text  # 6 + 120 + 20


@pytest.mark.slow
def test_results_of_two_runs_side_by_side_are_each_named_by_their_own_run(tiny_npz, tmp_path, capsys):
    """The study from one run, the lab MLP from a later one without a study: each record, the
    study's table, the published run record and the report's sections name the run that made them."""
    import mlp_mnist

    common = ["--data", tiny_npz, "--epochs", "1", "--hidden", "8", "--out", str(tmp_path)]
    assert run_main(mlp_mnist.main, [*common, "--study", "--study-hidden", "16", "--l2", "0.001", "--replicates", "1",
                                     "--study-epochs", "1", "--workers", "1"], capsys)[0] == 0
    assert run_main(mlp_mnist.main, [*common, "--lr", "0.05"], capsys)[0] == 0
    assert report.main(["--out", str(tmp_path)]) == 0
    (studied,), (later,) = ([p.name for p in (tmp_path / "runs").iterdir() if ("study" in p.name) == with_study]
                            for with_study in (True, False))
    study, mlp = record(tmp_path, "mlp_l2_study"), record(tmp_path, "mlp_mnist")
    assert (study["run"], mlp["run"]) == (studied, later)
    assert "l2 0.001" in study["config"]["changed"] and "lr 0.05" in mlp["config"]["changed"]
    assert f"in run {studied} (epochs 1, hidden 8, " in (tmp_path / "results" / "mlp_l2_study.md").read_text()
    assert record(tmp_path, "mlp_mnist_run")["name"] == later
    text = (tmp_path / "REPORT.md").read_text()
    assert "lr 0.05" not in section(text, "2D") and "l2 0.001, replicates 1" in section(text, "2D")
    assert "lr 0.05" in section(text, "2C") and "l2 0.001" not in section(text, "2C")
    assert "`mlp_mnist` flags: epochs 1, lr 0.05, hidden 8; `mlp_l2_study` flags: epochs 1, hidden 8, " in text
    assert "| `mlp_mnist.py`: lab MLP *(flags: epochs 1, lr 0.05, hidden 8)* | jax |" in text.split("## Wall time")[1]
    assert "| `mlp_mnist.py`: L2 study *(flags: epochs 1, hidden 8, study-hidden 16, l2 0.001," in text.split("## Wall time")[1]
