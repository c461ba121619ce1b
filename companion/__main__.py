"""``python -m companion ...``: see companion/tools/cli.py for the commands."""

import sys

from .tools.cli import main

sys.exit(main())
