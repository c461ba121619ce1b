"""``python -m companion ...``: see companion/cli.py for the commands."""

import sys

from .cli import main

sys.exit(main())
