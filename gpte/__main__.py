"""``python -m gpte`` runs the command line (see :mod:`gpte.cli`)."""

import sys

from gpte.cli import main

sys.exit(main())
