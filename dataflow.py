"""The composition root: ``python -m bytewax.run dataflow`` imports this and runs ``flow``.

Settings come from the ``WALKTHROUGHS_*`` environment (see README); a bad one stops the process
here, at start-up, with a message naming it.
"""

import os
import sys

from walkthroughs.app import build_from_env
from walkthroughs.errors import WalkthroughsError

try:
    flow = build_from_env(os.environ)
except WalkthroughsError as exc:
    sys.exit(f"walkthroughs: cannot start: {exc}")
