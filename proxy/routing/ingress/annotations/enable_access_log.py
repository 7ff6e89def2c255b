"""`enable-access-log`: "false" writes no access log line for the Ingress's requests (default: true; the
process's --access-log decides whether there is a log at all)."""

from proxy.routing.ingress.annotations.values import boolean

NAME = "enable-access-log"
DEFAULT = True


def parse(value: str) -> bool:
    return boolean(value)
