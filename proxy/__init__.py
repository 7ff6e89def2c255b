"""pyngress: a pure-Python Kubernetes ingress data plane."""

import os as _os

__version__ = "0.1.0"

# PYNGRESS_NO_EXTENSIONS=1: load every module from its .py, also where a compiled one is installed (see extensions).
if _os.environ.get("PYNGRESS_NO_EXTENSIONS", "") not in ("", "0"):
    from proxy.extensions import force_pure_python

    force_pure_python()
