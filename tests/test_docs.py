"""What the README tells a user to type agrees with what the project runs."""

import os
import re

from conftest import ROOT


def read(name):
    with open(os.path.join(ROOT, name), encoding="utf-8") as f:
        return f.read()


def test_make_lab_windows_and_colab_run_the_one_lab_command():
    """The lab's order and flags live in mnistlab/lab.py alone: every way in calls its command."""
    readme = read("README.md")
    without_make = readme.split("**Without `make`**")[1].split("```")[1]
    colab = readme.split("**On Google Colab**")[1].split("```")[1]
    make_lab = read("Makefile").split("\nlab: ")[1].split("\n\n")[0]
    assert re.findall(r"^python -m mnistlab\.lab(?:\s|$)", without_make, re.M)
    assert re.findall(r"^!python -m mnistlab\.lab(?:\s|$)", colab, re.M)
    assert make_lab.splitlines()[1:] == ["\t$(PY) -m mnistlab.lab"]
    assert not re.search(r"(mlp_mnist|cnn_mnist|denoise_autoencoder)\.py --", without_make + colab)
