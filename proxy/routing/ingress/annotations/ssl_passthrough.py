"""`ssl-passthrough`: TLS connections for the Ingress's hosts go to the pods undecrypted (default off).

Only with --enable-ssl-passthrough (as ingress-nginx); the Service of the host's "/" path receives them.
"""

from proxy.routing.ingress.annotations.values import boolean

NAME = "ssl-passthrough"
DEFAULT = False
DISABLED = "SSL passthrough is off for this Ingress"


def parse(value: str) -> bool:
    return boolean(value)
