"""`python -m ralphnb` runs the `ralphnb` command."""

import sys

from .cli.main import main

sys.exit(main())
