"""The lab report, written from a folder's own records: one section per question of the
handout, in its order, each answered with tables, figures and sentences computed from the
records in ``results/`` (and the figures in ``plots/``). Nothing in it is copied from an earlier
run: rerun with other flags, and the report describes that run, saying where it differs from
the lab's settings.

    python -m mnistlab.report [--out DIR]     # writes DIR/REPORT.md
"""

import os

from mnistlab import files
from mnistlab.errors import LabError
from mnistlab.flags import LabParser
from mnistlab.report import autoencoder, cnn, mlp
from mnistlab.report.common import provenance, read_records, wall_times

PROG = "python -m mnistlab.report"
SECTIONS = (mlp.preprocessing, mlp.mlp_layers, mlp.mlp_loss, mlp.mlp_curves, mlp.mlp_study, cnn.cnn_model,
            cnn.cnn_versus_dense, autoencoder.autoencoder, autoencoder.noise_levels,
            autoencoder.accuracy_against_noise, autoencoder.generating)


def render(out):
    records = read_records(out)
    lines = ["# The Keras MNIST lab: report", "",
             f"Written by `{PROG}` from the records in this folder's `results/` and the figures in "
             "`plots/`: every number and every comparison below is computed from them, so the report "
             "describes the runs that made them.", ""]
    lines += provenance(records)
    for section in SECTIONS:
        lines += section(records, out)
    lines += wall_times(records)
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None):
    parser = LabParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=".", help="the folder holding results/ and plots/")
    args = parser.parse_args(argv)
    if not os.path.isdir(os.path.join(args.out, "results")):
        raise LabError(f"no results/ under {args.out}; run the lab first (make lab), or pass --out "
                       "to the folder it wrote to")
    path = os.path.join(args.out, "REPORT.md")
    files.write_text(path, render(args.out))
    print(f"Wrote {path}")
    return 0
