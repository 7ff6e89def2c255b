"""`use-port-in-redirects`: write the HTTPS port into the HTTPS redirect's Location (default: the ConfigMap's key
of the same name, false).

ingress-nginx's port_in_redirect is for redirects nginx makes itself; of those, pyngress makes the HTTPS redirect
(`ssl-redirect`, `force-ssl-redirect`), where lua_ingress.lua writes `https://<host>:<listen_ports.https><uri>`
with it, the port even when it is 443 (routing.filters.HttpsRedirect's `port`).
"""

from proxy.routing.ingress.annotations.values import boolean

NAME = "use-port-in-redirects"
DEFAULT = False


def parse(value: str) -> bool:
    return boolean(value)
