"""`proxy-ssl-verify`: nginx's proxy_ssl_verify ("on" or "off").

Only read with proxy-ssl-secret, as in ingress-nginx."""

from proxy.routing.ingress.annotations.values import on_off

NAME = "proxy-ssl-verify"
DEFAULT = False


def parse(value: str) -> bool:
    return on_off(value)
