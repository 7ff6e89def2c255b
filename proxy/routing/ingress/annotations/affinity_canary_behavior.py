"""`affinity-canary-behavior` (on the canary Ingress): "sticky" (default) keeps a client whose affinity cookie
names a canary pod on the canary; "legacy" lets the canary rules decide again for it (ingress-nginx before
sticky canaries). A client whose cookie names a main pod stays on the main backend either way."""

from proxy.routing.ingress.annotations.values import option

NAME = "affinity-canary-behavior"
DEFAULT = "sticky"


def parse(value: str) -> str:
    return option(value, ("sticky", "legacy"))
