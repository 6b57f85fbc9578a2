"""``python -m tada_core.cli``: the same as the ``tada`` command."""

import sys

from tada_core.cli import main

sys.exit(main())
