"""The report as a whole: its sections in the handout's order, the banner and the wall times,
written to OUT/REPORT.md."""

import os

from mnistlab import files
from mnistlab.errors import LabError
from mnistlab.exits import LabParser
from mnistlab import report
from mnistlab.report import PROG, autoencoder, cnn, mlp
from mnistlab.report.common import provenance, read_records, wall_times, write

SECTIONS = mlp.SECTIONS + cnn.SECTIONS + autoencoder.SECTIONS  # the handout's order


def render(out):
    records = read_records(out)
    lines = ["# The Keras MNIST lab: report", "",
             f"Written by `{PROG}` from the records in this folder's `results/` and the figures in "
             "`plots/`: every number and every comparison below is computed from them, so the report "
             "describes the runs that made them.", ""]
    lines += provenance(records)
    for section in SECTIONS:
        lines += write(section, records, out)
    lines += wall_times(records)
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None):
    parser = LabParser(prog=PROG, description=report.__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=".", help="the folder holding results/ and plots/")
    args = parser.parse_args(argv)
    if not os.path.isdir(os.path.join(args.out, "results")):
        raise LabError(f"no results/ under {args.out}; run the lab first (make lab), or pass --out "
                       "to the folder it wrote to")
    path = os.path.join(args.out, "REPORT.md")
    files.write_text(path, render(args.out))
    print(f"Wrote {path}")
    return 0
