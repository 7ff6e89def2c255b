"""`upstream-vhost`: the Host header sent to the pods (nginx's `proxy_set_header Host`; default: the client's)."""

import re

from proxy.routing.ingress.annotations.values import Invalid

NAME = "upstream-vhost"
DEFAULT = ""
DISABLED = "the client's Host sent"

# A host name with an optional port (ingress-nginx allows nginx variables here too; pyngress does not).
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})?(:[0-9]{1,5})?")


def parse(value: str) -> str:
    text = value.strip()
    if _HOST.fullmatch(text) is None:
        raise Invalid(f"{value!r:.80} is not a host name (nginx variables are not supported)")
    return text
