"""python -m companion.grading grade|assign (the same as python -m companion grade|assign)."""

import sys

from .cli import main

sys.exit(main())
