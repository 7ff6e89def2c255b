"""`default-backend`: a Service of the Ingress's namespace (its first port) that answers, with the X-Code
headers of ingress-nginx's custom error pages, when a path's Service has no ready endpoints (503), and the
status codes `custom-http-errors` lists (default: none)."""

import re

from proxy.routing.ingress.annotations.values import Invalid

NAME = "default-backend"
DEFAULT = ""
DISABLED = "no default backend for the Ingress"

# A Service name (DNS-1035 label), as ingress-nginx's ValidateServiceName.
_SERVICE = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")


def parse(value: str) -> str:
    name = value.strip()
    if _SERVICE.fullmatch(name) is None:
        raise Invalid(f"{value!r:.80} is not a Service name")
    return name
