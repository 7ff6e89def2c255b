"""`auth-keepalive-share-vars`: with "true" the auth request carries the same X-Request-ID as the request
sent to the pod. pyngress always does (its request id is the request's), so both values behave alike."""

from proxy.routing.ingress.annotations.values import boolean

NAME = "auth-keepalive-share-vars"
DEFAULT = False


def parse(value: str) -> bool:
    return boolean(value)
