"""`enable-global-auth`: "false" exempts the Ingress from the ConfigMap's `global-auth-url` external
authentication (default: true; an Ingress with its own `auth-url` uses that one instead anyway)."""

from proxy.routing.ingress.annotations.values import boolean

NAME = "enable-global-auth"
DEFAULT = True


def parse(value: str) -> bool:
    return boolean(value)
