"""`session-cookie-change-on-failure`: after a failed attempt, point the cookie at the pod that answered.

pyngress always does ("true"); "false" (ingress-nginx's default: retries go back to the cookie's pod) is
read and validated only: a retry here always goes to another pod, and the cookie follows it."""

from proxy.routing.ingress.annotations.values import boolean

NAME = "session-cookie-change-on-failure"
DEFAULT = False


def parse(value: str) -> bool:
    return boolean(value)
