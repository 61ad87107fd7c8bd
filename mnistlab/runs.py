"""The runs command: a folder's runs listed, newest first, or some of them compared.

    python -m mnistlab.runs [--out DIR]                        # DIR/runs, newest first
    python -m mnistlab.runs compare [--out DIR] RUN [RUN ...]   # those runs (a unique prefix will do)
"""

from mnistlab import stops

PROG = "python -m mnistlab.runs"
if __name__ == "__main__":
    stops.from_now(PROG)  # before the comparison's libraries load

from mnistlab import compare, exits, files  # noqa: E402
from mnistlab.compare import label, with_edits  # noqa: E402
from mnistlab.errors import LabError  # noqa: E402
from mnistlab.records import all_runs, record_of, runs_folder  # noqa: E402
from mnistlab.stats import fmt_seconds  # noqa: E402


def find(metas, prefix, out):
    matches = [meta for meta in metas if meta["name"].startswith(prefix)]
    if len(matches) == 1:
        return matches[0]
    exact = [meta for meta in matches if meta["name"] == prefix]
    if exact:
        return exact[0]
    if not matches:
        raise LabError(f"no run named {prefix!r} in {runs_folder(out)}; "
                       "list them with python -m mnistlab.runs --out " + out)
    raise LabError(f"{prefix!r} matches {len(matches)} runs ({', '.join(m['name'] for m in matches[:3])}"
                   f"{', ...' if len(matches) > 3 else ''}); give more of the name")


def describe(meta):
    history = record_of(meta).get("history", {})
    metric = next((m for m in compare.CURVES if m in history), None)
    final = (f"final {metric.replace('_', ' ')} {compare.fmt_metric(metric, history[metric][-1])}" if metric
             else "no epoch yet")
    return f"{meta['name']}  [{label(meta['changed'])}]  {meta['status']}  {final}  {fmt_seconds(meta.get('wall_seconds'))}  ({compare.fmt_parts(meta)})"


def parse_args(argv):
    parser = exits.LabParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", metavar="DIR", default=".", help="the folder whose runs/ to read "
                        "(default: this folder, as the scripts; ./quick for --quick runs)")
    parser.add_argument("command", nargs="?", choices=["list", "compare"], default="list",
                        help="list the runs (default), or compare the RUNs named")
    parser.add_argument("run", nargs="*", metavar="RUN", help="runs to compare: folder names or unique prefixes")
    args = parser.parse_intermixed_args(argv)  # --out may come before or after the runs
    if args.command == "compare" and not args.run:
        parser.error("compare needs at least one RUN")
    if args.command == "list" and args.run:
        parser.error(f"unexpected {args.run[0]!r}; did you mean: compare {' '.join(args.run)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    metas = all_runs(args.out)
    if not metas:
        raise LabError(f"no runs in {runs_folder(args.out)}; run a lab script first "
                       "(python mlp_mnist.py), or pass --out to the folder it wrote to")
    if args.command == "list":
        for meta in reversed(with_edits(metas)):
            print(describe(meta))
        return 0
    chosen = [find(metas, prefix, args.out) for prefix in args.run]
    chosen = sorted({meta["name"]: meta for meta in chosen}.values(), key=lambda m: (m["started"], m["name"]))
    files.Outputs(args.out)
    table, study = compare.runs_and_studies(chosen, args.out, "runs_compare", "runs_compare_l2_study")
    print(table)
    print(study)
    print(f"Wrote {args.out}/plots/runs_compare.png and {args.out}/results/runs_compare.md"
          + (f", and the studies' {args.out}/plots/runs_compare_l2_study.png and .md" if study else ""))
    return 0


if __name__ == "__main__":
    exits.exit_script(main, PROG)
