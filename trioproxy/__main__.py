"""`python -m trioproxy`: the same as the `trioproxy` command."""

import sys

from .cli import main

sys.exit(main())
