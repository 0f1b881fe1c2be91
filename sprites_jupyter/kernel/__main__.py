"""``python -m sprites_jupyter.kernel`` runs the ``sprites-jupyter`` command."""

import sys

from .cli import main

sys.exit(main())
