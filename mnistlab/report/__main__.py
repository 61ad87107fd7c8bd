"""The lab report, written from a folder's own records: one section per question of the
handout, in its order, each answered from ``results/`` and ``plots/``, saying where a run's
settings differ from the lab's.

    python -m mnistlab.report [--out DIR]     # writes DIR/REPORT.md
"""

from mnistlab import cli

PROG = "python -m mnistlab.report"
if __name__ == "__main__":
    cli.from_now(PROG)  # before the report's libraries load

import os  # noqa: E402

from mnistlab import records  # noqa: E402
from mnistlab.report import autoencoder, cnn, mlp  # noqa: E402
from mnistlab.report.common import provenance, read_records, wall_times, write  # noqa: E402

SECTIONS = mlp.SECTIONS + cnn.SECTIONS + autoencoder.SECTIONS  # the handout's order

def render(out):
    found = read_records(out)
    lines = ["# The Keras MNIST lab: report", "",
             f"Written by `{PROG}` from the records in this folder's `results/` and the figures in "
             "`plots/`: every number and every comparison below is computed from them, so the report "
             "describes the runs that made them.", ""]
    lines += provenance(found) + [line for section in SECTIONS for line in write(section, found, out)]
    lines += wall_times(found)
    return "\n".join(lines).rstrip() + "\n"

def main(argv=None):
    parser = cli.LabParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=".", help="the folder holding results/ and plots/")
    args = parser.parse_args(argv)
    if not os.path.isdir(os.path.join(args.out, "results")):
        raise cli.LabError(f"no results/ under {args.out}; run the lab first (make lab), or pass --out "
                           "to the folder it wrote to")
    path = os.path.join(args.out, "REPORT.md")
    records.write_text(path, render(args.out))
    print(f"Wrote {path}")
    return 0

if __name__ == "__main__":
    cli.exit_command(main, None, prog=PROG)
