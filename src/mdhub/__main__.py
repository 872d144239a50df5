"""``python -m mdhub`` runs the CLI."""

import sys

from mdhub.cli import main

sys.exit(main())
