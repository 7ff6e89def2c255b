"""`mirror-host`: the Host header of mirrored copies (default: the host of `mirror-target`)."""

import re

from proxy.routing.ingress.annotations.values import Invalid

NAME = "mirror-host"
DEFAULT = ""
DISABLED = "the host of mirror-target sent"

# A host name with an optional port (ingress-nginx's ValidateServerName).
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})?(:[0-9]{1,5})?")


def parse(value: str) -> str:
    text = value.strip()
    if _HOST.fullmatch(text) is None:
        raise Invalid(f"{value!r:.80} is not a host name")
    return text
