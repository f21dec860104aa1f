"""``python -m qwatch`` is the same as the ``qwatch`` console script."""

import sys

from qwatch.cli import main

sys.exit(main())
