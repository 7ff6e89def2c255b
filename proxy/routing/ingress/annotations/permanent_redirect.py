"""`permanent-redirect`: every request gets a redirect to this URL (301 unless permanent-redirect-code)."""

from proxy.routing.ingress.annotations.values import http_url

NAME = "permanent-redirect"
DEFAULT = ""
DISABLED = "no redirect"


def parse(value: str) -> str:
    return http_url(value)
