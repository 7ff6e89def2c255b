"""`denylist-source-range`: clients in these networks get 403.

An invalid value fails closed: the Ingress's routes answer 503 (ingress-nginx's denied location).
"""

from proxy.routing.ingress.annotations.values import networks

NAME = "denylist-source-range"
DEFAULT: tuple[str, ...] = ()
DISABLED = "the Ingress's routes answer 503 until it is fixed (fail closed, as ingress-nginx)"


def parse(value: str) -> tuple[str, ...]:
    return networks(value)
