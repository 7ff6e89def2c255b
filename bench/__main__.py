"""`python -m bench`: nginx vs pyngress on this machine, end to end (see bench/README.md)."""

import sys

from bench.cli import main

sys.exit(main())
