"""`python -m ralphnb.cli`: the same as `python -m ralphnb` and the `ralphnb` command."""

import sys

from .main import main

sys.exit(main())
