"""`python -m proxy`: the same as the `pyngress` command."""

import sys

from proxy.cli import main

sys.exit(main())
