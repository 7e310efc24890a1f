"""``python -m medloop_ml`` runs the ``medloop-ml`` command line."""

import sys

from .cli import main

sys.exit(main())
