"""``python -m fcnlib``: see :mod:`fcnlib.cli`."""

import sys

from .cli import main

sys.exit(main())
