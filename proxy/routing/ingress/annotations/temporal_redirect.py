"""`temporal-redirect`: every request gets a redirect to this URL (302 unless temporal-redirect-code);
it wins over permanent-redirect when both are set, as in ingress-nginx."""

from proxy.routing.ingress.annotations.values import http_url

NAME = "temporal-redirect"
DEFAULT = ""
DISABLED = "no redirect"


def parse(value: str) -> str:
    return http_url(value)
