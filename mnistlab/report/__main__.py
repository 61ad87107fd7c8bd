"""``python -m mnistlab.report``: the lab report, under the error contract."""

import sys

from mnistlab import exits
from mnistlab.report import PROG

exits.stops_from_now(PROG)  # before the report's libraries load

from mnistlab.report.document import main  # noqa: E402

sys.exit(exits.run(main, prog=PROG))
