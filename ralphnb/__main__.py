"""`python -m ralphnb` runs the `ralphnb` command."""

import sys

from .cli import main

sys.exit(main())
