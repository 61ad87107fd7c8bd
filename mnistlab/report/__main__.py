"""``python -m mnistlab.report``: the lab report, under the error contract."""

import sys

from mnistlab import exits
from mnistlab.report.document import PROG, main

sys.exit(exits.run(main, prog=PROG))
