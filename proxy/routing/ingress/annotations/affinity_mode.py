"""`affinity-mode`: "balanced" (default) or "persistent" (pyngress's affinity is persistent in both)."""

from proxy.routing.ingress.annotations.values import option

NAME = "affinity-mode"
DEFAULT = "balanced"


def parse(value: str) -> str:
    return option(value, ("balanced", "persistent"))
