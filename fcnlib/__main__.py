"""``python -m fcnlib``: see :mod:`fcnlib.cli`."""

import sys

from .cpu import use_passive_wait

use_passive_wait()  # before anything imports torch: OpenMP reads OMP_WAIT_POLICY once
from .cli import main

sys.exit(main())
