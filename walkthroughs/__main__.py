"""Entry point of ``python -m walkthroughs``."""

import sys

from walkthroughs.tools.cli import main

sys.exit(main())
