"""`proxy-ssl-server-name`: nginx's proxy_ssl_server_name ("on" or "off").

Only read with proxy-ssl-secret, as in ingress-nginx."""

from proxy.routing.ingress.annotations.values import on_off

NAME = "proxy-ssl-server-name"
DEFAULT = False


def parse(value: str) -> bool:
    return on_off(value)
