"""``python -m tada_core.cli``: the same as the ``tada`` command."""

import sys

from . import main

sys.exit(main())
