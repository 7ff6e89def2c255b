"""`proxy-request-buffering`: "on" reads the whole request body before the pod is dialed (nginx's
proxy_request_buffering), "off" streams it. Unset: the ConfigMap's key of the same name, else pyngress's
streaming (ingress-nginx's default is "on": a difference, see docs/ingress-nginx.md)."""

from proxy.routing.ingress.annotations.values import option

NAME = "proxy-request-buffering"
DEFAULT = ""  # not set: streamed


def parse(value: str) -> str:
    return option(value, ("on", "off"))
