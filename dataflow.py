"""The composition root: ``python -m bytewax.run dataflow`` imports this and runs ``flow``.

Settings come from the ``WALKTHROUGHS_*`` environment (docs/configuration.md); a bad one stops
the process here, at start-up, with a message naming it. SIGTERM (what Kubernetes sends) is
turned into the interrupt Bytewax handles like Ctrl-C, and into a stop request that ends every
sink's waiting (``walkthroughs.runtime.stopping``): workers stop, sinks are closed; the epoch in
progress is not committed and is replayed on restart.
"""

import os
import signal
import sys

from walkthroughs.dataflow.app import build_from_env
from walkthroughs.errors import WalkthroughsError
from walkthroughs.runtime import stopping
from walkthroughs.runtime.redaction import scrub


def _interrupt(signum: int, frame: object) -> None:
    stopping.request()  # every sink wait gives up now: the stop is bounded
    msg = f"signal {signum}"
    raise KeyboardInterrupt(msg)


signal.signal(signal.SIGTERM, _interrupt)
try:
    flow = build_from_env(os.environ)
except WalkthroughsError as exc:
    sys.exit(scrub(f"walkthroughs: cannot start: {exc}"))
