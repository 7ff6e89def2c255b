"""`preserve-trailing-slash`: keep the trailing slash in the HTTPS redirect's Location.

pyngress always keeps it (ingress-nginx without this annotation drops one trailing "/"), so "true"
is what pyngress does anyway; the value is read and validated only.
"""

from proxy.routing.ingress.annotations.values import boolean

NAME = "preserve-trailing-slash"
DEFAULT = False


def parse(value: str) -> bool:
    return boolean(value)
