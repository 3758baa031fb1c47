"""Entry point of ``python -m walkthroughs``."""

import sys

from walkthroughs.cli import main

sys.exit(main())
