"""``python -m wskit``: the ``wskit`` command (see ``wskit --help``)."""

import sys

from ._cli import main

sys.exit(main())
