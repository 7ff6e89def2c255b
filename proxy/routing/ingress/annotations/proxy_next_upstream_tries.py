"""`proxy-next-upstream-tries`: attempts in all, the first included (nginx's proxy_next_upstream_tries;
ingress-nginx default 3; 0: no limit but the number of endpoints)."""

from proxy.routing.ingress.annotations.values import not_negative

NAME = "proxy-next-upstream-tries"
DEFAULT = -1  # not set
DISABLED = "ingress-nginx's default of 3 tries used"


def parse(value: str) -> int:
    return not_negative(value)
