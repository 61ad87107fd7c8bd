"""``python -m mnistlab.report``: the lab report, under the error contract."""

from mnistlab import stops
from mnistlab.report import PROG  # the package holds only its docstring and PROG: nothing to load

stops.from_now(PROG)  # before the report's libraries load

from mnistlab import exits  # noqa: E402
from mnistlab.report.document import main  # noqa: E402

exits.exit_script(main, PROG)
