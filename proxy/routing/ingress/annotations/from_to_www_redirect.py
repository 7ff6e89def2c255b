"""`from-to-www-redirect`: requests for www.<host> get 308 to <host> (and for <host> to www.<host> when the rule
host starts with "www."), ingress-nginx's redirect servers (default: false)."""

from proxy.routing.ingress.annotations.values import boolean

NAME = "from-to-www-redirect"
DEFAULT = False
DISABLED = "no www redirect"


def parse(value: str) -> bool:
    return boolean(value)
