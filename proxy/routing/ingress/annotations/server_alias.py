"""`server-alias`: more host names (comma-separated) served by the Ingress's rules, as its first rule host
is (nginx's server_name aliases; default: none)."""

from proxy.routing.fields import Malformed
from proxy.routing.ingress.annotations.values import Invalid
from proxy.routing.ingress.parse import check_host

NAME = "server-alias"
DEFAULT: tuple[str, ...] = ()
DISABLED = "no aliases"


def parse(value: str) -> tuple[str, ...]:
    names: list[str] = []
    for item in value.split(","):
        text = item.strip()
        if not text:
            continue
        try:
            name = check_host(text)
        except Malformed as error:
            raise Invalid(str(error)) from None
        if name not in names:
            names.append(name)
    if not names:
        raise Invalid(f"{value!r:.80} lists no host name")
    return tuple(names)
