"""What the README tells a user to type agrees with what the project runs."""

import os
import re

from conftest import ROOT
from mnistlab import lab


def test_the_readmes_lab_without_make_gives_each_script_the_flags_of_make_lab():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    without_make = readme.split("**Without `make`**")[1].split("```")[1]
    for script, flags in lab.LAB_FLAGS.items():
        [line] = re.findall(rf"^python {script}\.py (.*?)\s*(?:#.*)?$", without_make, re.M)
        assert line.split() == list(flags), script
