"""``python -m mnistlab.report``: the lab report, under the error contract."""

from mnistlab import exits
from mnistlab.report import PROG

exits.stops_from_now(PROG)  # before the report's libraries load

from mnistlab.report.document import main  # noqa: E402

exits.exit_script(main, PROG)
