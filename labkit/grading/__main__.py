"""``python -m labkit.grading ...``: the same as ``labkit grade ...``."""

import sys

from labkit.grading.cli import main

sys.exit(main())
