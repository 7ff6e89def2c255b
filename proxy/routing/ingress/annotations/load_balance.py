"""`load-balance`: the balancing algorithm of the Ingress's backends (round_robin, ewma; ingress-nginx's
chash, chashsubset, sticky_* are set by upstream-hash-by and affinity instead)."""

from proxy.routing.ingress.annotations.values import option

NAME = "load-balance"
DEFAULT = ""  # not set: round robin
OPTIONS = ("round_robin", "chash", "chashsubset", "sticky_balanced", "sticky_persistent", "ewma")


def parse(value: str) -> str:
    return option(value, OPTIONS)
